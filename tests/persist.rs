//! A jar saved to a file and loaded into a new jar, through the middleware.
//!
//! A client talks to an in-process balancer that rotates an `AWSALB` cookie
//! with a 7-day `Max-Age` on every response and pins with the session
//! cookie `SRV`. The jar is saved, a new jar loads the file, and a new
//! client over it must send the same `Cookie` header on its first request
//! as the old client sends on its next one.

#![cfg(feature = "persist")]

mod support;

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use http::{
    HeaderValue, Request, Response,
    header::{COOKIE, SET_COOKIE},
};
use tower::{Service, ServiceExt, service_fn};
use tower_sticky::{
    MemoryJar, Sticky,
    jar::{PersistError, SaveOptions},
};

use support::TempDir;

const URI: &str = "http://lb.example/orders";

/// The `Cookie` headers a balancer received, oldest first.
type Received = Arc<Mutex<Vec<Option<HeaderValue>>>>;

/// Returns a service that imitates an ALB: it records each request's
/// `Cookie` header and sets a new `AWSALB` value and the session cookie
/// `SRV=s1` on every response.
fn balancer(
    received: Received,
) -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    let rotation = Arc::new(AtomicU64::new(0));
    service_fn(move |request: Request<()>| {
        let received = Arc::clone(&received);
        let rotation = Arc::clone(&rotation);
        async move {
            received
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(request.headers().get(COOKIE).cloned());
            let round = rotation.fetch_add(1, Ordering::Relaxed) + 1;
            let awsalb = format!("AWSALB=v{round}; Max-Age=604800; Path=/");
            let mut response = Response::new(());
            let headers = response.headers_mut();
            headers.append(SET_COOKIE, HeaderValue::from_str(&awsalb).unwrap());
            headers.append(SET_COOKIE, HeaderValue::from_static("SRV=s1; Path=/"));
            Ok(response)
        }
    })
}

async fn get<S>(client: &mut S)
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let request = Request::get(URI).body(()).unwrap();
    let Ok(_response) = client.ready().await.unwrap().call(request).await;
}

fn last_received(received: &Received) -> Option<HeaderValue> {
    received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .last()
        .cloned()
        .expect("the balancer received a request")
}

/// Runs two requests through a client over a new jar and returns the jar.
async fn warmed_up_jar() -> Arc<MemoryJar> {
    let jar = Arc::new(MemoryJar::new());
    let received = Received::default();
    let mut client = Sticky::with_jar(balancer(received), Arc::clone(&jar));
    get(&mut client).await;
    get(&mut client).await;
    jar
}

#[tokio::test]
async fn restored_client_sends_same_header() {
    let dir = TempDir::new("persist");
    let path = dir.path().join("jar.json");
    let jar = warmed_up_jar().await;
    let saved = jar
        .save_to_file(&path, &SaveOptions::default())
        .expect("save the jar");

    // What the old client sends next, from the jar that was saved.
    let old_received = Received::default();
    let mut old_client = Sticky::with_jar(balancer(Arc::clone(&old_received)), jar);
    get(&mut old_client).await;
    let old_header = last_received(&old_received).expect("the old client sent cookies");

    let restored = Arc::new(MemoryJar::new());
    let report = restored.load_from_file(&path).expect("load the jar");
    let new_received = Received::default();
    let mut new_client = Sticky::with_jar(balancer(Arc::clone(&new_received)), restored);
    get(&mut new_client).await;
    let new_header = last_received(&new_received).expect("the new client sent cookies");

    assert_eq!(saved, 2);
    assert_eq!(report.loaded, 2);
    assert_eq!(new_header.as_bytes(), old_header.as_bytes());
    assert_eq!(new_header.as_bytes(), b"AWSALB=v2; SRV=s1");
    assert!(new_header.is_sensitive());
}

#[tokio::test]
async fn session_cookie_left_out_on_request() {
    let dir = TempDir::new("persist");
    let path = dir.path().join("jar.json");
    let jar = warmed_up_jar().await;
    let options = SaveOptions::new().include_session_cookies(false);
    jar.save_to_file(&path, &options).expect("save the jar");

    let restored = Arc::new(MemoryJar::new());
    restored.load_from_file(&path).expect("load the jar");
    let received = Received::default();
    let mut client = Sticky::with_jar(balancer(Arc::clone(&received)), restored);
    get(&mut client).await;

    let header = last_received(&received).expect("the new client sent cookies");
    assert_eq!(header.as_bytes(), b"AWSALB=v2");
}

#[tokio::test]
async fn missing_file_starts_empty() {
    let dir = TempDir::new("persist");
    let jar = Arc::new(MemoryJar::new());

    let error = jar
        .load_from_file(dir.path().join("absent.json"))
        .unwrap_err();
    let received = Received::default();
    let mut client = Sticky::with_jar(balancer(Arc::clone(&received)), jar);
    get(&mut client).await;

    assert!(error.is_not_found(), "{error}");
    assert_eq!(last_received(&received), None);
}

#[tokio::test]
async fn corrupt_file_leaves_jar_untouched() {
    let dir = TempDir::new("persist");
    let path = dir.path().join("jar.json");
    let jar = warmed_up_jar().await;
    jar.save_to_file(&path, &SaveOptions::default())
        .expect("save the jar");
    let saved = std::fs::read(&path).expect("read the saved file");
    std::fs::write(&path, &saved[..saved.len() / 2]).expect("truncate the file");

    let restored = Arc::new(MemoryJar::new());
    let error = restored.load_from_file(&path).unwrap_err();

    assert!(matches!(error, PersistError::Json { .. }), "{error:?}");
    assert!(restored.is_empty());
}
