//! The fake's state: repositories with their runs, pull requests, collaborators and comments; the
//! credentials it accepts; the faults it is told to inject; the request log.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use shared::github::Permission;

use super::seed::Seed;
use super::{
    FakeComment, FakeJob, FakePullRequest, FakeRun, Fault, FaultRule, Presented, RequestRecord,
};

/// GitHub's installation tokens live an hour.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// GitHub refuses App JWTs valid for longer than ten minutes.
const MAX_JWT_LIFETIME_SECS: i64 = 600;

pub(super) struct Repo {
    pub id: u64,
    pub owner: String,
    pub name: String,
    pub installation: Option<u64>,
    pub runs: BTreeMap<u64, FakeRun>,
    /// By lower-cased login: GitHub logins are case-insensitive.
    pub collaborators: HashMap<String, Permission>,
    pub pulls: BTreeMap<u64, FakePullRequest>,
    /// By pull request number, oldest first.
    pub comments: BTreeMap<u64, Vec<FakeComment>>,
    /// Workflow jobs by id, with their logs.
    pub jobs: BTreeMap<u64, FakeJob>,
    /// What `clone_url` says (a local repository's `file://` URL in tests); GitHub's form otherwise.
    pub clone_url: Option<String>,
}

impl Repo {
    pub(super) fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    pub(super) fn put_run(&mut self, run: FakeRun) {
        self.runs.insert(run.id, run);
    }
}

pub(super) struct App {
    pub id: u64,
    key: DecodingKey,
}

pub(super) struct IssuedToken {
    pub installation: u64,
    pub expires_at: DateTime<Utc>,
}

pub(super) struct State {
    pub base_url: String,
    /// By lower-cased `owner/name`: GitHub names are case-insensitive.
    pub repos: BTreeMap<String, Repo>,
    pub tokens: HashSet<String>,
    pub app: Option<App>,
    pub installation_tokens: HashMap<String, IssuedToken>,
    pub token_ttl: Duration,
    pub faults: Vec<FaultRule>,
    pub log: Vec<RequestRecord>,
    next_id: u64,
}

impl State {
    pub(super) fn new(base_url: String) -> Self {
        Self {
            base_url,
            repos: BTreeMap::new(),
            tokens: HashSet::new(),
            app: None,
            installation_tokens: HashMap::new(),
            token_ttl: DEFAULT_TOKEN_TTL,
            faults: Vec::new(),
            log: Vec::new(),
            next_id: 1000,
        }
    }

    pub(super) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(super) fn repo(&self, full_name: &str) -> Option<&Repo> {
        self.repos.get(&full_name.to_ascii_lowercase())
    }

    /// The repository, created empty on first mention.
    pub(super) fn repo_mut(&mut self, full_name: &str) -> &mut Repo {
        let key = full_name.to_ascii_lowercase();
        if !self.repos.contains_key(&key) {
            let id = self.next_id();
            let (owner, name) = full_name.split_once('/').unwrap_or((full_name, full_name));
            let repo = Repo {
                id,
                owner: owner.into(),
                name: name.into(),
                installation: None,
                runs: BTreeMap::new(),
                collaborators: HashMap::new(),
                pulls: BTreeMap::new(),
                comments: BTreeMap::new(),
                jobs: BTreeMap::new(),
                clone_url: None,
            };
            self.repos.insert(key.clone(), repo);
        }
        self.repos.get_mut(&key).expect("inserted above")
    }

    pub(super) fn add_comment(&mut self, repo: &str, pr: u64, user: &str, body: &str) -> u64 {
        let id = self.next_id();
        let comment = FakeComment::new(id, user, body);
        self.repo_mut(repo)
            .comments
            .entry(pr)
            .or_default()
            .push(comment);
        id
    }

    pub(super) fn register_app(&mut self, app_id: u64, public_key_pem: &str) {
        let key = DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
            .expect("the App's public key must be an RSA public key in PEM form");
        self.app = Some(App { id: app_id, key });
    }

    pub(super) fn apply_seed(&mut self, seed: &Seed) -> Result<(), String> {
        self.tokens.extend(seed.tokens.iter().cloned());
        for entry in &seed.repositories {
            let mut collaborators = HashMap::new();
            for (login, role) in &entry.collaborators {
                let permission = Permission::parse(role).ok_or_else(|| {
                    format!(
                        "{}: unknown permission {role:?} for {login}",
                        entry.full_name
                    )
                })?;
                collaborators.insert(login.to_ascii_lowercase(), permission);
            }
            let repo = self.repo_mut(&entry.full_name);
            if let Some(id) = entry.id {
                repo.id = id;
            }
            repo.installation = entry.installation_id.or(repo.installation);
            repo.collaborators.extend(collaborators);
            for run in &entry.workflow_runs {
                repo.put_run(run.clone());
            }
            for pr in &entry.pull_requests {
                repo.pulls.insert(pr.number, pr.clone());
            }
            for job in &entry.jobs {
                repo.jobs.insert(job.id, job.clone());
            }
        }
        Ok(())
    }

    /// Whether calls need a credential: once a token or an App is configured.
    pub(super) fn auth_required(&self) -> bool {
        !self.tokens.is_empty() || self.app.is_some()
    }

    /// What an `Authorization` header presents (`Bearer X` or `token X`).
    pub(super) fn identify(&self, authorization: Option<&str>) -> Presented {
        let Some(header) = authorization else {
            return Presented::Nothing;
        };
        let Some((scheme, credential)) = header.trim().split_once(' ') else {
            return Presented::Invalid;
        };
        if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
            return Presented::Invalid;
        }
        let credential = credential.trim();
        if self.tokens.contains(credential) {
            return Presented::Token;
        }
        if let Some(issued) = self.installation_tokens.get(credential) {
            return if issued.expires_at > Utc::now() {
                Presented::InstallationToken {
                    installation: issued.installation,
                }
            } else {
                Presented::Invalid
            };
        }
        if self.app.is_some() && credential.split('.').count() == 3 {
            return Presented::AppJwt;
        }
        Presented::Invalid
    }

    /// Checks an App JWT as GitHub does: RS256 under the App's key, `iss` the App's id, not expired,
    /// issued in the past, valid for at most ten minutes. The error is GitHub's message.
    pub(super) fn verify_app_jwt(&self, authorization: Option<&str>) -> Result<u64, String> {
        let app = self
            .app
            .as_ref()
            .ok_or("A JSON web token could not be decoded")?;
        let jwt = authorization
            .and_then(|h| h.trim().split_once(' '))
            .map(|(_, jwt)| jwt.trim())
            .ok_or("A JSON web token could not be decoded")?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_required_spec_claims(&["exp", "iat", "iss"]);
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<serde_json::Value>(jwt, &app.key, &validation)
            .map_err(|e| format!("A JSON web token could not be decoded ({e})"))?
            .claims;
        // GitHub accepts the App id as a number or a string.
        let issuer = match &claims["iss"] {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        };
        if issuer != Some(app.id) {
            return Err("'Issuer' claim ('iss') must be an Integer".into());
        }
        let now = Utc::now().timestamp();
        let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
        if iat.is_none_or(|iat| iat > now) {
            return Err(
                "'Issued at' claim ('iat') must be an Integer representing a time in the past"
                    .into(),
            );
        }
        if exp.is_none_or(|exp| exp > now + MAX_JWT_LIFETIME_SECS) {
            return Err("'Expiration time' claim ('exp') is too far in the future".into());
        }
        Ok(app.id)
    }

    /// Whether `installation` exists (the App is installed on some repository under it).
    pub(super) fn has_installation(&self, installation: u64) -> bool {
        self.repos
            .values()
            .any(|r| r.installation == Some(installation))
    }

    pub(super) fn issue_token(&mut self, installation: u64) -> (String, DateTime<Utc>) {
        let token = format!("ghs_{}", uuid::Uuid::new_v4().simple());
        let ttl = chrono::Duration::from_std(self.token_ttl).unwrap_or(chrono::Duration::hours(1));
        let expires_at = Utc::now() + ttl;
        self.installation_tokens.insert(
            token.clone(),
            IssuedToken {
                installation,
                expires_at,
            },
        );
        (token, expires_at)
    }

    /// The fault to answer `method path` with, if a rule still applies; uses up one of its times.
    pub(super) fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let rule = self.faults.iter_mut().find(|rule| {
            rule.times > 0
                && rule.method.as_deref().is_none_or(|m| m == method)
                && rule
                    .path_contains
                    .as_deref()
                    .is_none_or(|p| path.contains(p))
        })?;
        rule.times -= 1;
        Some(rule.fault)
    }
}
