//! `cargo run --example fake_kinde`: a FakeKinde on 127.0.0.1 for trying `examples/server.rs`
//! (and the throughput script) without a Kinde account.
//!
//! Prints shell assignments on stdout, then serves until killed:
//!
//! ```text
//! KINDE_ISSUER_URL=http://127.0.0.1:PORT
//! KINDE_AUDIENCE=claimcheck:test-api
//! KINDE_MANAGEMENT_CLIENT_ID=…
//! KINDE_MANAGEMENT_CLIENT_SECRET=…
//! TOKEN=…   (kp_bench, read:reports in the token, create:payments granted live; valid 24 h)
//! ```

use claimcheck::testing::{DEFAULT_ORG, FakeKinde};

#[tokio::main]
async fn main() {
    let kinde = FakeKinde::start().await;
    let (id, secret) = kinde.register_management_client();
    kinde.grant(DEFAULT_ORG, "kp_bench", "create:payments");
    let token = kinde
        .user_token("kp_bench")
        .permissions(["read:reports"])
        .expires_in(24 * 3600)
        .sign();
    println!("KINDE_ISSUER_URL={}", kinde.issuer());
    println!("KINDE_AUDIENCE={}", kinde.audience());
    println!("KINDE_MANAGEMENT_CLIENT_ID={id}");
    println!("KINDE_MANAGEMENT_CLIENT_SECRET={secret}");
    println!("TOKEN={token}");
    let _ = tokio::signal::ctrl_c().await;
}
