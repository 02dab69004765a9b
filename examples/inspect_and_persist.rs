//! Lists the cookies in a jar, saves them to a file and restores them in a new
//! client.
//!
//! A balancer in this process, on 127.0.0.1, pins clients like an AWS ALB:
//! it sets `AWSALB` and `AWSALBCORS` (`SameSite=None; Secure`) to expire in
//! 7 days, and a session cookie `SRV`. It responds with the cookie names it
//! received and a hash of the `Cookie` header, never the values. The new
//! client's first request must carry the same header as the old client's
//! next one.
//!
//! ```text
//! cargo run --example inspect_and_persist --features persist
//! ```

#[cfg(not(feature = "persist"))]
fn main() -> std::process::ExitCode {
    eprintln!("this example saves a jar, which needs the `persist` feature. Run it with:");
    eprintln!("    cargo run --example inspect_and_persist --features persist");
    std::process::ExitCode::FAILURE
}

#[cfg(feature = "persist")]
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    example::run().await
}

#[cfg(feature = "persist")]
mod example {
    use std::{
        convert::Infallible,
        error::Error,
        hash::{DefaultHasher, Hash, Hasher},
        net::SocketAddr,
        process::ExitCode,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::{Duration, SystemTime, UNIX_EPOCH},
    };

    use bytes::Bytes;
    use http::{Request, Response, header};
    use http_body_util::{BodyExt, Empty, Full};
    use hyper::{body::Incoming, server::conn::http1, service::service_fn};
    use hyper_util::{
        client::legacy::{Client, connect::HttpConnector},
        rt::{TokioExecutor, TokioIo},
    };
    use tokio::net::TcpListener;
    use tower::{Service, ServiceBuilder, ServiceExt};
    use tower_sticky::{MemoryJar, Sticky, StickyLayer, jar::SaveOptions};

    const BACKENDS: usize = 3;
    type HttpClient = Client<HttpConnector, Empty<Bytes>>;

    pub(crate) async fn run() -> Result<ExitCode, Box<dyn Error>> {
        let url = format!("http://{}/", start_balancer().await?);
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
        println!("AWSALBCORS is Secure, so it is kept but sent only over https.\n");

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
            eprintln!("the restored client sent a different Cookie header");
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }

    fn sticky(http: &HttpClient, jar: &Arc<MemoryJar>) -> Sticky<HttpClient> {
        let layer = StickyLayer::with_jar(Arc::clone(jar));
        ServiceBuilder::new().layer(layer).service(http.clone())
    }

    async fn get(client: &mut Sticky<HttpClient>, url: &str) -> Result<String, Box<dyn Error>> {
        let request = Request::get(url).body(Empty::new())?;
        let response = client.ready().await?.call(request).await?;
        let body = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(body.to_vec())?)
    }

    async fn start_balancer() -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let counter = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                let service = service_fn(move |request| balance(request, Arc::clone(&counter)));
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Ok(address)
    }

    /// Routes by the backend index at the start of `AWSALB`, or round robin
    /// without it, and sets fresh cookies like an ALB.
    async fn balance(
        request: Request<Incoming>,
        counter: Arc<AtomicUsize>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let cookie = request.headers().get(header::COOKIE);
        let cookie = cookie.and_then(|value| value.to_str().ok()).unwrap_or("");
        let pairs = || cookie.split("; ").filter_map(|pair| pair.split_once('='));
        let names: Vec<&str> = pairs().map(|(name, _)| name).collect();
        let pinned = pairs()
            .find(|(name, _)| *name == "AWSALB")
            .and_then(|(_, value)| value.split('.').next()?.parse().ok())
            .filter(|backend| *backend < BACKENDS);
        let count = counter.fetch_add(1, Ordering::Relaxed);
        let backend = pinned.unwrap_or(count % BACKENDS);

        let mut hasher = DefaultHasher::new();
        cookie.hash(&mut hasher);
        let body = format!(
            "backend-{backend}, cookies {names:?}, header hash {:08x}",
            hasher.finish() as u32
        );
        let mut response = Response::new(Full::new(Bytes::from(body)));
        let expires = http_date(SystemTime::now() + Duration::from_secs(7 * 24 * 3600));
        let value = format!("{backend}.{count:08x}");
        let set_cookies = [
            format!("AWSALB={value}; Expires={expires}; Path=/"),
            format!("AWSALBCORS={value}; Expires={expires}; Path=/; SameSite=None; Secure"),
            format!("SRV=s{backend}; Path=/"),
        ];
        for line in set_cookies {
            let value = line.parse().expect("ASCII without control characters");
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        Ok(response)
    }

    /// Formats a time as an HTTP date, such as `Thu, 01 Jan 2026 00:00:00 GMT`.
    fn http_date(time: SystemTime) -> String {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let (mut days, clock) = (seconds / 86_400, seconds % 86_400);
        let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
        let leap = |year: u64| {
            u64::from(
                year.is_multiple_of(4) && !year.is_multiple_of(100) || year.is_multiple_of(400),
            )
        };
        let mut year = 1970;
        while days >= 365 + leap(year) {
            days -= 365 + leap(year);
            year += 1;
        }
        let mut lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        lengths[1] += leap(year);
        let mut month = 0;
        while days >= lengths[month] {
            days -= lengths[month];
            month += 1;
        }
        let name = &"JanFebMarAprMayJunJulAugSepOctNovDec"[month * 3..month * 3 + 3];
        let (hour, minute, second) = (clock / 3600, clock / 60 % 60, clock % 60);
        format!(
            "{weekday}, {:02} {name} {year} {hour:02}:{minute:02}:{second:02} GMT",
            days + 1
        )
    }
}
