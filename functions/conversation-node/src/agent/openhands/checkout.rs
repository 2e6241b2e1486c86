//! A proactive conversation's workspace starts as a clone of its repository at the pull request's head,
//! made on the agent-server (its bash endpoint) before the remote conversation exists. The token that
//! reads the repository goes to the server as a credentials file beside the workspace, named (never
//! spelled) in the command and removed when the clone ends: it is in no command, event or log.

use std::time::Duration;

use shared::domain::Checkout;
use shared::github::{CloneAccess, GitHubClient, RepoRef};

use super::super::AgentError;
use super::client::ServerClient;

/// How long a clone may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);

/// Clones `checkout` into `workspace` on the server. `Err` says why, for the user.
pub(super) async fn check_out(
    github: &GitHubClient,
    server: &ServerClient,
    checkout: &Checkout,
    workspace: &str,
) -> Result<(), String> {
    let (owner, name) = checkout
        .repository
        .split_once('/')
        .ok_or_else(|| format!("{} is not owner/name", checkout.repository))?;
    let repo = RepoRef {
        owner,
        name,
        installation_id: checkout.installation_id,
    };
    let access = github
        .clone_access(repo)
        .await
        .map_err(|error| format!("GitHub did not give the repository: {error}"))?;
    let credentials = format!("{workspace}.git-credentials");
    let script = clone_script(&access, workspace, checkout, &credentials);
    let ran = async {
        if let Some(token) = &access.token {
            server
                .upload(&credentials, &credential_line(&access.url, token))
                .await?;
        }
        server.execute(&script, CLONE_TIMEOUT).await
    };
    let executed = ran.await.map_err(|error: AgentError| error.to_string())?;
    match executed.exit_code {
        Some(0) => Ok(()),
        code => Err(format!(
            "git could not check {} out at {} (exit {code:?}): {}",
            checkout.repository,
            checkout.commit.as_str(),
            last_line(&executed.stderr)
        )),
    }
}

/// The shell script that clones into `workspace` (replacing what is there) and checks the commit out,
/// fetching the pull request's head too (a fork's commit is only reachable through it). The
/// credentials file goes whatever the clone's outcome.
fn clone_script(
    access: &CloneAccess,
    workspace: &str,
    checkout: &Checkout,
    credentials: &str,
) -> String {
    let git = match access.token {
        Some(_) => format!(
            "git -c credential.helper={}",
            quote(&format!("store --file={credentials}"))
        ),
        None => "git".to_owned(),
    };
    let workspace = quote(workspace);
    // A commit id is hex: it needs no quoting.
    let commit = checkout.commit.as_str();
    let clone = format!(
        "rm -rf {workspace}\n\
         {git} clone --quiet --no-checkout {url} {workspace}\n\
         cd {workspace}\n\
         {git} fetch --quiet origin +refs/pull/{pr}/head:refs/remotes/origin/pull/{pr} || true\n\
         git checkout --quiet --detach {commit}",
        url = quote(&access.url),
        pr = checkout.pull_request,
    );
    match access.token {
        Some(_) => format!(
            "(set -e\n{clone}\n)\nstatus=$?\nrm -f {}\nexit $status\n",
            quote(credentials)
        ),
        None => format!("set -e\n{clone}\n"),
    }
}

/// A `git credential-store` line for the clone URL's host.
fn credential_line(url: &str, token: &str) -> String {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_else(|| "github.com".to_owned());
    format!("https://x-access-token:{token}@{host}\n")
}

/// `text` single-quoted for the shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn last_line(text: &str) -> &str {
    text.trim().lines().last().unwrap_or("no output")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::HeadSha;

    fn checkout() -> Checkout {
        Checkout {
            repository: "octo/app".into(),
            commit: HeadSha::parse(&"a".repeat(40)).unwrap(),
            pull_request: 7,
            installation_id: None,
        }
    }

    #[test]
    fn the_token_is_never_in_the_script() {
        let access = CloneAccess {
            url: "https://github.com/octo/app.git".into(),
            token: Some("ghs_secret".into()),
        };
        let script = clone_script(&access, "/w/it's", &checkout(), "/w/it's.git-credentials");
        assert!(!script.contains("ghs_secret"));
        assert!(script.contains("'/w/it'\\''s'"), "{script}");
        assert!(script.contains("refs/pull/7/head"));
        assert!(script.contains(&"a".repeat(40)));
        assert_eq!(
            credential_line(&access.url, "ghs_secret"),
            "https://x-access-token:ghs_secret@github.com\n"
        );
    }

    #[test]
    fn an_anonymous_clone_has_no_credentials() {
        let access = CloneAccess {
            url: "file:///repos/app".into(),
            token: None,
        };
        let script = clone_script(&access, "/w/c1", &checkout(), "/w/c1.git-credentials");
        assert!(!script.contains("credential"));
        assert!(script.contains("git clone --quiet --no-checkout 'file:///repos/app' '/w/c1'"));
    }
}
