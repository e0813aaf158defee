//! The layer as a tower service: claims from outside are stripped, misconfiguration is a 500,
//! and the inner service's error type is kept.

use std::convert::Infallible;

use axum::body::Body;
use claimcheck::authz::RequirePermissionLayer;
use claimcheck::testing::FakeKinde;
use claimcheck::{Claims, JwtAuthLayer, Permission, Verifier};
use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt, service_fn};

async fn verifier(kinde: &FakeKinde) -> Verifier {
    let v = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .build()
        .unwrap();
    assert!(v.warm_up().await);
    v
}

/// Answers 200 with the subject the handler saw, or 299 if it saw no claims.
async fn echo(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let seen = req.extensions().get::<Claims>().cloned();
    let mut res = Response::new(Body::from(
        seen.as_ref()
            .and_then(|c| c.subject().map(str::to_owned))
            .unwrap_or_default(),
    ));
    if seen.is_none() {
        *res.status_mut() = StatusCode::from_u16(299).unwrap();
    }
    Ok(res)
}

async fn body(res: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn claims_smuggled_in_from_outside_are_stripped() {
    let kinde = FakeKinde::start().await;
    let verifier = verifier(&kinde).await;
    // Claims genuinely verified for someone else, planted by an earlier layer or a bug.
    let planted = verifier
        .verify(
            &kinde
                .user_token("kp_admin")
                .permissions(["read:reports"])
                .sign(),
        )
        .await
        .unwrap();
    let svc = JwtAuthLayer::new(verifier).layer(service_fn(echo));

    let mut anonymous = Request::new(Body::empty());
    anonymous.extensions_mut().insert(planted.clone());
    let res = svc.clone().oneshot(anonymous).await.unwrap();
    assert_eq!(res.status(), 401, "no token must mean no claims");

    let mut user = Request::new(Body::empty());
    user.extensions_mut().insert(planted);
    let token = kinde.user_token("kp_user").sign();
    user.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let res = svc.oneshot(user).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await, "kp_user");
}

#[tokio::test]
async fn a_permission_layer_without_authentication_is_a_500_not_an_allow() {
    const P: Permission = Permission::from_static("read:reports");
    let svc = RequirePermissionLayer::token_trusted(P).layer(service_fn(echo));
    let res = svc.oneshot(Request::new(Body::empty())).await.unwrap();
    assert_eq!(res.status(), 500);
    assert!(body(res).await.contains("misconfigured"));
}

#[tokio::test]
async fn the_unknown_kid_path_calls_the_inner_service_once_verified() {
    let kinde = FakeKinde::start().await;
    // No warm-up: the first request must fetch the keys through the async path.
    let verifier = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .build()
        .unwrap();
    let svc = JwtAuthLayer::new(verifier).layer(service_fn(echo));
    let token = kinde.user_token("kp_cold").sign();
    let mut req = Request::new(Body::empty());
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await, "kp_cold");
}
