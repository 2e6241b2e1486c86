//! Least privilege, tested: the roles' policies as `template.yaml` declares them, and a moto server of
//! the test's own that enforces IAM as AWS does (`scripts/lib/moto_iam_server.py`: each action on its
//! table, index, bus or secret ARN; a transaction's items each as its own action), where a test runs the
//! real code as a moto user holding exactly one role's statements.
//!
//! - [`Template`]: the template as JSON (cfn-lint's parser knows CloudFormation's short tags), a role's
//!   statements, and their intrinsic functions resolved to the test's own ARNs ([`resolve`]).
//! - [`IamMoto`]: the enforcing moto server, its admin (who sets the world up) and the role users
//!   ([`RoleUser`]), with what each one was allowed to do ([`IamMoto::used_by`]) to compare with what
//!   its statements grant ([`grants`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use serde_json::{Value, json};
use tokio::process::Child;

use crate::lambda_tools::{run, tool, workspace_root};

/// How long parsing the template or creating a user may take.
const TOOL_LIMIT: Duration = Duration::from_secs(300);
/// How long the moto server may take to answer its first request.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The account and region moto puts every resource in.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// A CloudFormation template read as JSON.
pub struct Template {
    json: Value,
}

impl Template {
    /// The template the stack deploys: `template.yaml` in the workspace root.
    pub fn deployed_path() -> PathBuf {
        workspace_root().join("template.yaml")
    }

    pub async fn deployed() -> Self {
        Self::read(&Self::deployed_path()).await
    }

    /// Any template (a scratch copy of the deployed one, say), parsed by cfn-lint's own decoder.
    pub async fn read(path: &Path) -> Self {
        let mut decode = tool("python");
        decode
            .args([
                "-c",
                "import json, sys\nfrom cfnlint.decode import decode\n\
                 template, errors = decode(sys.argv[1])\nassert not errors, errors\nprint(json.dumps(template))",
            ])
            .arg(path);
        let output = run(decode, TOOL_LIMIT).await;
        Self {
            json: serde_json::from_str(&output.stdout).expect("the template as JSON"),
        }
    }

    pub fn json(&self) -> &Value {
        &self.json
    }

    /// Every statement the role of `logical_id` grants: an `AWS::IAM::Role`'s inline policies, or a SAM
    /// function's inline policy documents. A managed policy or a SAM policy template cannot be read
    /// as statements, so it fails the test: the template keeps its grants explicit.
    pub fn role_statements(&self, logical_id: &str) -> Vec<Value> {
        let resource = &self.json["Resources"][logical_id];
        let policies = resource["Properties"]["Policies"]
            .as_array()
            .unwrap_or_else(|| panic!("{logical_id} has no Policies list"));
        let documents = policies
            .iter()
            .map(|policy| match resource["Type"].as_str() {
                Some("AWS::IAM::Role") => &policy["PolicyDocument"],
                Some("AWS::Serverless::Function") => policy,
                other => panic!("{logical_id} is a {other:?}, not a role or a function"),
            });
        documents
            .flat_map(|document| {
                document["Statement"]
                    .as_array()
                    .unwrap_or_else(|| {
                        panic!("{logical_id}: not an inline statement list: {document}")
                    })
                    .clone()
            })
            .collect()
    }
}

/// `value` with its `Ref`, `Fn::GetAtt` and `Fn::Sub` replaced by `names` (`"ProactiveTable.Arn"`,
/// `"SecretsArn"`...). A name missing from `names` fails the test: every reference is accounted for.
pub fn resolve(value: &Value, names: &BTreeMap<String, String>) -> Value {
    let name = |key: &str| -> Value {
        Value::String(
            names
                .get(key)
                .unwrap_or_else(|| panic!("no value for {key} in the test's names"))
                .clone(),
        )
    };
    match value {
        Value::Object(map) if map.len() == 1 => {
            let (function, argument) = map.iter().next().expect("one entry");
            match function.as_str() {
                "Ref" => name(argument.as_str().expect("Ref names a string")),
                "Fn::GetAtt" => match argument {
                    Value::Array(parts) => name(
                        &parts
                            .iter()
                            .map(|part| part.as_str().expect("GetAtt parts are strings"))
                            .collect::<Vec<_>>()
                            .join("."),
                    ),
                    other => name(other.as_str().expect("GetAtt of a string")),
                },
                "Fn::Sub" => Value::String(substitute(
                    argument.as_str().expect("Fn::Sub of a string"),
                    names,
                )),
                _ => Value::Object(
                    std::iter::once((function.clone(), resolve(argument, names))).collect(),
                ),
            }
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), resolve(value, names)))
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| resolve(item, names)).collect())
        }
        other => other.clone(),
    }
}

/// An action on a resource (ARN), as IAM authorises one.
pub type Permission = (String, String);

/// Every (action, resource) pair resolved `statements` allow.
pub fn grants(statements: &[Value]) -> BTreeSet<Permission> {
    let listed = |value: &Value| -> Vec<String> {
        match value {
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().expect("a string").to_owned())
                .collect(),
            Value::String(one) => vec![one.clone()],
            other => panic!("not a string or a list: {other}"),
        }
    };
    let mut granted = BTreeSet::new();
    for statement in statements {
        assert_eq!(statement["Effect"], "Allow", "{statement}");
        for action in listed(&statement["Action"]) {
            for resource in listed(&statement["Resource"]) {
                granted.insert((action.clone(), resource));
            }
        }
    }
    granted
}

/// `Fn::Sub`'s `${Name}` and `${Name.Attribute}` replaced.
fn substitute(text: &str, names: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').expect("a closed ${...}") + start;
        let key = &rest[start + 2..end];
        out.push_str(&rest[..start]);
        out.push_str(
            names
                .get(key)
                .unwrap_or_else(|| panic!("no value for ${{{key}}} in the test's names")),
        );
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Creates an IAM user with an inline policy of the given statements and an access key; prints the
/// key as JSON. Run with the caller's credentials in the environment (boto3 reads them).
const CREATE_USER: &str = r#"
import json, os, sys
import boto3
iam = boto3.client("iam", endpoint_url=os.environ["IAM_ENDPOINT"], region_name="us-east-1")
name, statements = sys.argv[1], json.loads(sys.argv[2])
iam.create_user(UserName=name)
document = {"Version": "2012-10-17", "Statement": statements}
iam.put_user_policy(UserName=name, PolicyName="role", PolicyDocument=json.dumps(document))
key = iam.create_access_key(UserName=name)["AccessKey"]
print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
"#;

/// The audit file's name in its directory.
const AUDIT_FILE: &str = "allowed.tsv";

/// The requests moto serves before it enforces IAM: the admin's user, its policy and its key.
const UNAUTHENTICATED_REQUESTS: &str = "3";

/// A moto server enforcing IAM, on a loopback port of its own; stopped when dropped.
pub struct IamMoto {
    child: Child,
    endpoint: String,
    admin: (String, String),
    /// Holds the audit file: every (access key, action, resource) the server allowed.
    audit: tempfile::TempDir,
}

/// A moto user holding one role's statements.
pub struct RoleUser {
    pub config: SdkConfig,
    key_id: String,
}

impl Drop for IamMoto {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl IamMoto {
    /// Starts the server and creates its admin (allowed everything), which sets the world up.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let audit = tempfile::tempdir().expect("a directory for the audit");
        let mut server = tool("python");
        server
            .arg(workspace_root().join("scripts/lib/moto_iam_server.py"))
            .args(["127.0.0.1", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", UNAUTHENTICATED_REQUESTS)
            .env("MOTO_IAM_AUDIT", audit.path().join(AUDIT_FILE))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = server.spawn().expect("start the IAM-enforcing moto server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "moto did not listen on {endpoint}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut moto = Self {
            child,
            endpoint,
            admin: ("bootstrap".into(), "bootstrap".into()),
            audit,
        };
        let everything = json!([{ "Effect": "Allow", "Action": "*", "Resource": "*" }]);
        moto.admin = moto.create_user("admin", &everything).await;
        moto
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The SDK configuration of the admin.
    pub async fn admin(&self) -> SdkConfig {
        self.sdk_config(&self.admin).await
    }

    /// A user allowed exactly `statements` (already resolved to ARNs).
    pub async fn user(&self, name: &str, statements: &[Value]) -> RoleUser {
        let key = self
            .create_user(name, &Value::from(statements.to_vec()))
            .await;
        RoleUser {
            config: self.sdk_config(&key).await,
            key_id: key.0,
        }
    }

    /// Every (action, resource) pair the server has allowed `user` so far.
    pub fn used_by(&self, user: &RoleUser) -> BTreeSet<Permission> {
        let audit = std::fs::read_to_string(self.audit.path().join(AUDIT_FILE)).unwrap_or_default();
        audit
            .lines()
            .filter_map(|line| {
                let mut fields = line.split('\t');
                let (key, action, resource) = (fields.next()?, fields.next()?, fields.next()?);
                (key == user.key_id).then(|| (action.to_owned(), resource.to_owned()))
            })
            .collect()
    }

    async fn create_user(&self, name: &str, statements: &Value) -> (String, String) {
        let mut create = tool("python");
        create
            .args(["-c", CREATE_USER, name, &statements.to_string()])
            .env("IAM_ENDPOINT", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.admin.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.admin.1);
        let output = run(create, TOOL_LIMIT).await;
        let key: Value = serde_json::from_str(&output.stdout).expect("the access key as JSON");
        (
            key["id"].as_str().expect("a key id").to_owned(),
            key["secret"].as_str().expect("a secret key").to_owned(),
        )
    }

    async fn sdk_config(&self, (id, secret): &(String, String)) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(id, secret, None, None, "moto-iam"))
            .load()
            .await
    }
}
