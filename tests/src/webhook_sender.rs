//! What `send-webhook` sends: a delivery read from a sample (an API Gateway v2 request, or a raw GitHub
//! payload plus its event name), re-signed with the endpoint's secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use webhook::signature;

/// One webhook delivery, ready to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event: String,
    pub delivery_id: String,
    pub body: Vec<u8>,
}

/// The endpoint's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The body as JSON, or as a JSON string when it was not JSON.
    pub body: Value,
}

/// Reads a sample file. An API Gateway v2 request gives its body (base64-decoded when
/// `isBase64Encoded`) and its `x-github-event`/`x-github-delivery` headers; any other JSON is a raw
/// GitHub payload, sent byte for byte, and needs `event`. `event` overrides the sample's.
pub fn read_delivery(file: &[u8], event: Option<&str>) -> Result<Delivery, String> {
    let json: Value =
        serde_json::from_slice(file).map_err(|e| format!("the sample is not JSON: {e}"))?;
    let is_api_gateway = json.get("requestContext").is_some() && json.get("body").is_some();
    if !is_api_gateway {
        let event = event.ok_or("a raw GitHub payload needs --event NAME")?;
        return Ok(Delivery {
            event: event.into(),
            delivery_id: String::new(),
            body: file.to_vec(),
        });
    }
    let header = |name: &str| {
        json["headers"]
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_owned)
    };
    let raw_body = json["body"]
        .as_str()
        .ok_or("the request's body is not a string")?;
    let body = if json["isBase64Encoded"].as_bool().unwrap_or(false) {
        BASE64
            .decode(raw_body)
            .map_err(|e| format!("the request's body is not base64: {e}"))?
    } else {
        raw_body.as_bytes().to_vec()
    };
    let event = event
        .map(str::to_owned)
        .or_else(|| header("x-github-event"))
        .ok_or("the request has no x-github-event header; pass --event NAME")?;
    let delivery_id = header("x-github-delivery").unwrap_or_default();
    Ok(Delivery {
        event,
        delivery_id,
        body,
    })
}

/// POSTs `delivery` to `url` as GitHub would, signed with `secret`.
pub async fn send(url: &str, secret: &[u8], delivery: &Delivery) -> Result<Answer, reqwest::Error> {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/local")
        .header("x-github-event", &delivery.event)
        .header("x-github-delivery", &delivery.delivery_id)
        .header(
            "x-hub-signature-256",
            signature::sign(secret, &delivery.body),
        )
        .body(delivery.body.clone())
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer { status, body })
}
