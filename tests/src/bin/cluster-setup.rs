//! `make cluster`'s setup step: creates the DynamoDB tables the environment names (on
//! `AWS_ENDPOINT_URL`, idempotent) and prints a development token for `--user`, signed with
//! `JWT_HS256_SECRET`, as the nodes verify it.

use anyhow::Context;
use clap::Parser;
use shared::adapters::dynamo::create_tables;
use shared::config::{self, TableNames};

#[derive(Parser)]
#[command(about = "Create the cluster's tables and print a development token")]
struct Args {
    /// The user the token names.
    #[arg(long, default_value = "dev-user")]
    user: String,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let secret = config::required("JWT_HS256_SECRET")?;
    let client = aws_sdk_dynamodb::Client::new(&shared::aws::sdk_config().await);
    create_tables(&client, &TableNames::from_env())
        .await
        .context("creating the tables")?;
    let claims = Claims {
        sub: &args.user,
        // A day: long enough for a development session.
        exp: chrono::Utc::now().timestamp() + 24 * 3600,
    };
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?;
    println!("{token}");
    Ok(())
}
