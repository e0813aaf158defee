//! Soak and load: `examples/server.rs` (release build, Management API source) against a
//! FakeKinde, under mixed concurrent traffic for `SOAK_SECONDS` (default 300). Run it with
//! `scripts/soak`; it is not part of `cargo test`.
//!
//! Traffic, from `SOAK_CONCURRENCY` workers (default 32): valid token-trusted and strict
//! requests, expired, forged and unknown-kid tokens, a revoked user whose token still claims the
//! permission, a user whose claims a webhook made stale, webhooks arriving every second, a key
//! rotation midway, and permission-API faults switched on for 5 s every 60 s.
//!
//! Every answer is checked against the truth. A wrong answer is a forged, expired, unknown-kid,
//! revoked or stale request allowed, or a valid one refused while the upstreams were healthy
//! (no fault in the last 40 s: the breaker may pause calls for up to 30 s after an outage).
//! Genuine tokens (and webhooks) signed with the new key may be refused (401, 400) for 35 s after
//! the rotation: under the unknown-kid flood the JWKS is refetched at most once per 30 s cooldown
//! (by design); those refusals are counted and reported apart.
//! Exits 1 if there was any wrong answer, any 5xx other than a deliberate 503, or the server's
//! resident memory grew by more than a fifth over the second half of the run (the first half
//! fills the bounded caches).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use claimcheck::testing::{DEFAULT_ORG, Endpoint, FakeKinde, Fault};

/// What a request is, and so which answers are right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Reports,
    Payments,
    Expired,
    Forged,
    UnknownKid,
    Revoked,
    Stale,
    Webhook,
}

const KINDS: [Kind; 8] = [
    Kind::Reports,
    Kind::Payments,
    Kind::Expired,
    Kind::Forged,
    Kind::UnknownKid,
    Kind::Revoked,
    Kind::Stale,
    Kind::Webhook,
];

#[derive(Default)]
struct Tally {
    answers: BTreeMap<(Kind, u16), u64>,
    wrong: Vec<String>,
    unexpected_5xx: u64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size and its peak (kB) of `pid`.
fn rss_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let seconds = env_u64("SOAK_SECONDS", 300);
    let workers = env_u64("SOAK_CONCURRENCY", 32);
    let kinde = Arc::new(FakeKinde::start().await);
    let (id, secret) = kinde.register_management_client();
    kinde.grant(DEFAULT_ORG, "kp_payer", "create:payments");
    kinde.grant(DEFAULT_ORG, "kp_reader", "read:reports");

    let binary = std::env::current_exe().unwrap().with_file_name("server");
    let mut server = Command::new(binary)
        .env_clear()
        .env("KINDE_ISSUER_URL", kinde.issuer())
        .env("KINDE_AUDIENCE", kinde.audience())
        .env("KINDE_MANAGEMENT_CLIENT_ID", &id)
        .env("KINDE_MANAGEMENT_CLIENT_SECRET", &secret)
        .env("CLAIMCHECK_BIND", "127.0.0.1:0")
        .env("CLAIMCHECK_STRICT_TTL_MS", "1000")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("build the examples first: cargo build --release --examples");
    let pid = server.id();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().trim_start_matches("listening on ").to_owned();
    println!("soak: {seconds} s, {workers} workers, server pid {pid} at {base}");

    // The stale user: their token claims read:reports, Kinde no longer grants it, and a
    // webhook said so (sent after the token was issued).
    let stale_token = kinde
        .user_token("kp_stale")
        .permissions(["read:reports"])
        .issued_in(-5)
        .sign();
    let hook = format!("{base}/webhooks/kinde");
    assert_eq!(kinde.user_updated("kp_stale").deliver(&hook).await, 200);

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let last_fault = Arc::new(Mutex::new(None::<Instant>));
    let rotated_at = Arc::new(Mutex::new(None::<Instant>));
    let refused_after_rotation = Arc::new(AtomicU64::new(0));
    let faulty = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let requests = Arc::new(AtomicU64::new(0));

    // The conductor: faults on for 5 s every 45 s, a key rotation midway, webhooks each second.
    let conductor = {
        let (kinde, last_fault, faulty) = (kinde.clone(), last_fault.clone(), faulty.clone());
        let (hook, rotated_at) = (hook.clone(), rotated_at.clone());
        tokio::spawn(async move {
            let mut rotated = false;
            let mut tick = 0u64;
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tick += 1;
                let on = (20..25).contains(&(tick % 60));
                if on != faulty.load(Ordering::SeqCst) {
                    if on {
                        kinde
                            .set_fault(Endpoint::ManagementPermissions, Fault::Status(500, vec![]));
                    } else {
                        kinde.clear_fault(Endpoint::ManagementPermissions);
                    }
                    faulty.store(on, Ordering::SeqCst);
                }
                if on {
                    *last_fault.lock().unwrap() = Some(Instant::now());
                }
                if !rotated && Instant::now() >= started + Duration::from_secs(seconds / 2) {
                    kinde.rotate_key();
                    *rotated_at.lock().unwrap() = Some(Instant::now());
                    rotated = true;
                }
                let _ = kinde.user_updated("kp_payer").deliver(&hook).await;
            }
        })
    };

    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (kinde, client, base) = (kinde.clone(), client.clone(), base.clone());
        let (tally, requests, last_fault) = (tally.clone(), requests.clone(), last_fault.clone());
        let (stale_token, hook) = (stale_token.clone(), hook.clone());
        let (rotated_at, refused_after_rotation) =
            (rotated_at.clone(), refused_after_rotation.clone());
        tasks.push(tokio::spawn(async move {
            // Tokens are minted per round, so key rotation reaches new tokens.
            let mut round = worker;
            while Instant::now() < deadline {
                round += 1;
                let kind = KINDS[(round % KINDS.len() as u64) as usize];
                let (method, path, token) = match kind {
                    Kind::Reports => (
                        "GET",
                        "/reports",
                        kinde
                            .user_token("kp_reader")
                            .permissions(["read:reports"])
                            .sign(),
                    ),
                    Kind::Payments => ("POST", "/payments", kinde.user_token("kp_payer").sign()),
                    Kind::Expired => (
                        "GET",
                        "/reports",
                        kinde
                            .user_token("kp_reader")
                            .permissions(["read:reports"])
                            .expires_in(-120)
                            .sign(),
                    ),
                    Kind::Forged => (
                        "POST",
                        "/payments",
                        kinde.user_token("kp_payer").forged().sign(),
                    ),
                    Kind::UnknownKid => (
                        "GET",
                        "/me",
                        kinde
                            .user_token("kp_1")
                            .header("kid", format!("kid-{round}"))
                            .sign(),
                    ),
                    Kind::Revoked => (
                        "POST",
                        "/payments",
                        kinde
                            .user_token("kp_revoked")
                            .permissions(["create:payments"])
                            .sign(),
                    ),
                    Kind::Stale => ("GET", "/reports", stale_token.clone()),
                    Kind::Webhook => ("WEBHOOK", "", String::new()),
                };
                let status = if kind == Kind::Webhook {
                    kinde.user_updated("kp_reader").deliver(&hook).await
                } else {
                    let req = if method == "POST" {
                        client.post(format!("{base}{path}"))
                    } else {
                        client.get(format!("{base}{path}"))
                    };
                    req.bearer_auth(&token)
                        .send()
                        .await
                        .map_or(0, |r| r.status().as_u16())
                };
                requests.fetch_add(1, Ordering::Relaxed);
                let healthy = last_fault
                    .lock()
                    .unwrap()
                    .is_none_or(|at| at.elapsed() > Duration::from_secs(40));
                // Token-trusted requests go live too when a webhook made the user's claims stale.
                let live = matches!(
                    kind,
                    Kind::Reports | Kind::Payments | Kind::Revoked | Kind::Stale
                );
                let just_rotated = rotated_at
                    .lock()
                    .unwrap()
                    .is_some_and(|at| at.elapsed() < Duration::from_secs(35));
                // Genuine tokens and webhooks signed with the new key, refused because its kid
                // is not fetched yet (never an allow): expected for one cooldown, counted apart.
                let genuine = matches!(kind, Kind::Reports | Kind::Payments | Kind::Revoked);
                let new_key_refused =
                    (genuine && status == 401) || (kind == Kind::Webhook && status == 400);
                if new_key_refused && just_rotated {
                    refused_after_rotation.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let right = match kind {
                    Kind::Reports | Kind::Payments => status == 200 || (!healthy && status == 503),
                    Kind::Expired | Kind::Forged | Kind::UnknownKid => status == 401,
                    Kind::Revoked | Kind::Stale => status == 403 || (!healthy && status == 503),
                    Kind::Webhook => status == 200,
                };
                let mut tally = tally.lock().unwrap();
                *tally.answers.entry((kind, status)).or_default() += 1;
                if !right {
                    tally
                        .wrong
                        .push(format!("{kind:?} answered {status} (healthy: {healthy})"));
                }
                if status >= 500 && !(status == 503 && live) {
                    tally.unexpected_5xx += 1;
                }
            }
        }));
    }

    // RSS every 10 s. The caches fill up to their capacities first (10 000 verified tokens at
    // ~2 KB each is most of it); "start" is the first sample after half the run.
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(10)).await;
        samples.push((started.elapsed().as_secs(), rss_kb(pid).0));
    }
    for task in tasks {
        let _ = task.await;
    }
    let _ = conductor.await;
    let (rss_end, peak_end) = rss_kb(pid);
    let half = samples.len() / 2;
    let (start_at, rss_start) = samples.get(half).copied().unwrap_or((0, rss_end));
    let _ = server.kill();
    let _ = server.wait();

    let elapsed = started.elapsed().as_secs_f64();
    let tally = tally.lock().unwrap();
    let total = requests.load(Ordering::Relaxed);
    println!(
        "requests: {total} in {elapsed:.0} s ({:.0}/s)",
        total as f64 / elapsed
    );
    println!("| kind | status | count |\n| --- | ---: | ---: |");
    for ((kind, status), count) in &tally.answers {
        println!("| {kind:?} | {status} | {count} |");
    }
    let upstream = kinde.calls(Endpoint::ManagementPermissions);
    println!(
        "upstream: {upstream} permission calls ({:.1}/s), {} JWKS fetches, {} token requests",
        upstream as f64 / elapsed,
        kinde.calls(Endpoint::Jwks),
        kinde.calls(Endpoint::Token)
    );
    println!(
        "genuine tokens and webhooks with the new key refused within the JWKS cooldown: {}",
        refused_after_rotation.load(Ordering::Relaxed)
    );
    println!("wrong answers: {}", tally.wrong.len());
    for wrong in tally.wrong.iter().take(20) {
        println!("  {wrong}");
    }
    println!("5xx other than deliberate 503s: {}", tally.unexpected_5xx);
    let curve: Vec<String> = samples
        .iter()
        .map(|(t, kb)| format!("{t}s:{}MB", kb / 1024))
        .collect();
    println!("server RSS every 10 s: {}", curve.join(" "));
    println!(
        "server RSS at {start_at} s: {rss_start} kB; at the end: {rss_end} kB (peak {peak_end} kB)"
    );
    let flat = rss_end <= rss_start + rss_start / 5;
    if tally.wrong.is_empty() && tally.unexpected_5xx == 0 && flat {
        println!("soak passed");
        ExitCode::SUCCESS
    } else {
        println!("soak FAILED");
        ExitCode::FAILURE
    }
}
