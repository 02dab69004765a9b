//! Lists the cookies in a jar, saves them to a file and restores them in a new
//! client.
//!
//! The ALB-like balancer from `support/alb.rs` runs in this process on
//! 127.0.0.1. It sets `AWSALB` and `AWSALBCORS` (`SameSite=None; Secure`) to
//! expire in 7 days on every response, and its backends add a session cookie
//! `SRV`. Each backend responds with its number and the cookie names it
//! received, never the values. The new client's first request must reach the
//! same backend with the same cookies as the old client's next one.
//!
//! ```text
//! cargo run --example inspect_and_persist --features persist
//! ```

#[path = "support/alb.rs"]
mod alb;

use std::{process::ExitCode, sync::Arc};

use alb::{BoxError, start_balancer};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_sticky::{MemoryJar, Sticky, StickyLayer, jar::SaveOptions};

const BACKENDS: usize = 3;
type HttpClient = Client<HttpConnector, Empty<Bytes>>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<ExitCode, BoxError> {
    let balancer = start_balancer(BACKENDS, |backend, request| {
        let body = format!(
            "backend-{backend}, cookies {:?}",
            cookie_names(request.headers())
        );
        async move {
            let response = Response::builder()
                .header(header::SET_COOKIE, format!("SRV=s{backend}; Path=/"))
                .body(Full::from(body))?;
            Ok(response)
        }
    })
    .await?;
    let url = format!("http://{}/", balancer.address);
    let http = Client::builder(TokioExecutor::new()).build_http();

    let jar = Arc::new(MemoryJar::new());
    let mut client = sticky(&http, &jar);
    for round in 1..=3 {
        println!("request {round}: {}", get(&mut client, &url).await?);
    }
    println!("\nthe jar holds {} cookies (values redacted):", jar.len());
    for cookie in jar.cookies() {
        println!("  {cookie}");
    }
    println!("AWSALBCORS is Secure, so the jar keeps it but sends it only over https.\n");

    let path = std::env::temp_dir().join(format!("tower-sticky-{}.json", std::process::id()));
    let saved = jar.save_to_file(&path, &SaveOptions::default())?;
    let restored = Arc::new(MemoryJar::new());
    let loaded = restored.load_from_file(&path);
    std::fs::remove_file(&path)?;
    println!(
        "saved {saved} cookies to {} and loaded {} into a new jar",
        path.display(),
        loaded?.loaded
    );

    let old = get(&mut client, &url).await?;
    let new = get(&mut sticky(&http, &restored), &url).await?;
    println!("old client, next request:  {old}");
    println!("new client, first request: {new}");
    if old != new {
        eprintln!("the restored client reached another backend or sent other cookies");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Collects the names of the cookies in the request's `Cookie` headers.
fn cookie_names(headers: &HeaderMap) -> Vec<String> {
    let pairs = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'));
    let names = pairs.filter_map(|pair| pair.split_once('=').map(|(name, _)| name.trim()));
    names.map(str::to_owned).collect()
}

fn sticky(http: &HttpClient, jar: &Arc<MemoryJar>) -> Sticky<HttpClient> {
    let layer = StickyLayer::with_jar(Arc::clone(jar));
    ServiceBuilder::new().layer(layer).service(http.clone())
}

async fn get(client: &mut Sticky<HttpClient>, url: &str) -> Result<String, BoxError> {
    let request = Request::get(url).body(Empty::new())?;
    let response = client.ready().await?.call(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}
