//! A gRPC API behind claimcheck: a tonic server whose methods are guarded by the same layers as
//! HTTP routes, answering rejections as gRPC statuses.
//!
//! ```sh
//! cargo run --example grpc   # no configuration: a fake Kinde, and one call per answer, checked
//! KINDE_ISSUER_URL=https://<your_subdomain>.kinde.com KINDE_AUDIENCE=<your API audience> \
//!   cargo run --example grpc # serves on CLAIMCHECK_BIND (127.0.0.1:50051) until Ctrl-C
//! ```
//!
//! The service, `claimcheck.example.Reports` (`KINDE_MANAGEMENT_CLIENT_ID`/`_SECRET` choose the
//! Management API for its strict method, as in `examples/server.rs`):
//!
//! ```proto
//! syntax = "proto3";
//! package claimcheck.example;
//! service Reports {
//!   rpc List(ListRequest) returns (ListReply); // token-trusted: read:reports
//!   rpc Pay(PayRequest) returns (PayReply);    // strict: create:payments at Kinde, now;
//! }                                            // over 1 000 also approve:payments (in the handler)
//! message ListRequest {}
//! message ListReply { repeated string reports = 1; }
//! message PayRequest { uint64 amount = 1; }
//! message PayReply { bool paid = 1; string by = 2; }
//! ```
//!
//! `mod proto` below is what `tonic-prost-build` would generate for it, written by hand so that
//! building needs no `protoc`. With a build script, `tonic::include_proto!` brings the generated
//! code instead (its server and client live in `reports_server` / `reports_client`, and the
//! implementation takes `#[tonic::async_trait]`); the rest of this file is the same.
//!
//! How the layers go on a tonic server: each method's path is a route of an axum `Router`
//! (`route_service`), its requirement a `route_layer`, `auth.layer()` outside them all, and
//! tonic serves the router (`Routes::from`). Mounted this way the layers see axum's body type;
//! a tonic service wrapped directly (`auth.strict(P).layer(server)`) does not fit until its
//! response body is mapped to axum's (`tonic::body::Body` cannot be built from bytes, which an
//! HTTP rejection needs; see the README's gRPC section). A rejection is a trailers-only answer:
//! `UNAUTHENTICATED`, `PERMISSION_DENIED` naming the requirement, `UNAVAILABLE` with a
//! `google.rpc.RetryInfo`. Handlers read the `Claims` from the request's extensions, and a
//! check inside a handler answers with `?` (feature `tonic`: `Rejection` into `tonic::Status`).
//!
//! When ready it prints `listening on http://HOST:PORT` to stdout. Plain HTTP is served too
//! (`GET /health`; an HTTP request to a method's path gets the usual problem+json answers).

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::routing::get;
use claimcheck::kinde::KindeConfig;
use claimcheck::{Auth, Claims, Permission};
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};
use tonic_types::StatusExt as _;

use proto::{ListReply, ListRequest, PayReply, PayRequest, ReportsClient, ReportsServer};

const READ_REPORTS: Permission = Permission::from_static("read:reports");
const CREATE_PAYMENTS: Permission = Permission::from_static("create:payments");
/// Payments over [`LARGE_PAYMENT`] also need this, checked live in the handler.
const APPROVE_PAYMENTS: Permission = Permission::from_static("approve:payments");
const LARGE_PAYMENT: u64 = 1_000;

/// The messages, the server and the client `tonic-prost-build` would generate (undocumented,
/// as generated code is when the `.proto` has no comments).
#[allow(missing_docs)]
pub mod proto {
    use std::convert::Infallible;
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use http::uri::PathAndQuery;
    use tonic::codegen::{BoxFuture, StdError};
    use tonic::server::NamedService;
    use tonic::transport::Channel;
    use tonic::{Request, Response, Status};
    use tonic_prost::ProstCodec;

    /// The service's full name.
    pub const SERVICE: &str = "claimcheck.example.Reports";
    /// The paths of its methods.
    pub const LIST: &str = "/claimcheck.example.Reports/List";
    pub const PAY: &str = "/claimcheck.example.Reports/Pay";

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListRequest {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListReply {
        #[prost(string, repeated, tag = "1")]
        pub reports: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PayRequest {
        #[prost(uint64, tag = "1")]
        pub amount: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PayReply {
        #[prost(bool, tag = "1")]
        pub paid: bool,
        #[prost(string, tag = "2")]
        pub by: String,
    }

    /// What an implementation of the service provides.
    pub trait Reports: Send + Sync + 'static {
        fn list(
            &self,
            request: Request<ListRequest>,
        ) -> impl Future<Output = Result<Response<ListReply>, Status>> + Send;
        fn pay(
            &self,
            request: Request<PayRequest>,
        ) -> impl Future<Output = Result<Response<PayReply>, Status>> + Send;
    }

    /// The service as a tower `Service` of HTTP requests, dispatching on the method's path.
    #[derive(Debug)]
    pub struct ReportsServer<T> {
        inner: Arc<T>,
    }

    impl<T> ReportsServer<T> {
        pub fn new(inner: T) -> Self {
            Self {
                inner: Arc::new(inner),
            }
        }
    }

    impl<T> Clone for ReportsServer<T> {
        fn clone(&self) -> Self {
            Self {
                inner: self.inner.clone(),
            }
        }
    }

    impl<T> NamedService for ReportsServer<T> {
        const NAME: &'static str = SERVICE;
    }

    impl<T, B> tower::Service<http::Request<B>> for ReportsServer<T>
    where
        T: Reports,
        B: http_body::Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = BoxFuture<Self::Response, Infallible>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<B>) -> Self::Future {
            let inner = self.inner.clone();
            match req.uri().path() {
                LIST => Box::pin(async move {
                    let method = tower::service_fn(|r| async { inner.list(r).await });
                    Ok(tonic::server::Grpc::new(ProstCodec::default())
                        .unary(method, req)
                        .await)
                }),
                PAY => Box::pin(async move {
                    let method = tower::service_fn(|r| async { inner.pay(r).await });
                    Ok(tonic::server::Grpc::new(ProstCodec::default())
                        .unary(method, req)
                        .await)
                }),
                _ => Box::pin(async { Ok(Status::unimplemented("").into_http()) }),
            }
        }
    }

    /// A client of the service.
    #[derive(Debug, Clone)]
    pub struct ReportsClient {
        inner: tonic::client::Grpc<Channel>,
    }

    impl ReportsClient {
        /// Connects to `http://{addr}` (HTTP/2 without TLS).
        pub async fn connect(addr: std::net::SocketAddr) -> Result<Self, tonic::transport::Error> {
            let channel = Channel::from_shared(format!("http://{addr}"))
                .expect("a socket address is a valid URI")
                .connect()
                .await?;
            Ok(Self {
                inner: tonic::client::Grpc::new(channel),
            })
        }

        pub async fn list(
            &mut self,
            request: Request<ListRequest>,
        ) -> Result<Response<ListReply>, Status> {
            self.unary(request, LIST).await
        }

        pub async fn pay(
            &mut self,
            request: Request<PayRequest>,
        ) -> Result<Response<PayReply>, Status> {
            self.unary(request, PAY).await
        }

        async fn unary<M1, M2>(
            &mut self,
            request: Request<M1>,
            path: &'static str,
        ) -> Result<Response<M2>, Status>
        where
            M1: prost::Message + Send + Sync + 'static,
            M2: prost::Message + Default + Send + Sync + 'static,
        {
            self.inner
                .ready()
                .await
                .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
            let path = PathAndQuery::from_static(path);
            self.inner.unary(request, path, ProstCodec::default()).await
        }
    }
}

/// The service's implementation: by the time a method runs, its route layer has allowed.
pub struct Api {
    auth: Auth,
}

impl proto::Reports for Api {
    async fn list(&self, _: Request<ListRequest>) -> Result<Response<ListReply>, Status> {
        let reports = vec!["q1".to_owned(), "q2".to_owned()];
        Ok(Response::new(ListReply { reports }))
    }

    async fn pay(&self, request: Request<PayRequest>) -> Result<Response<PayReply>, Status> {
        // `auth.layer()` put the verified claims in the request's extensions.
        let claims = request
            .extensions()
            .get::<Claims>()
            .ok_or_else(|| Status::internal("no claims: is auth.layer() in front?"))?;
        if request.get_ref().amount > LARGE_PAYMENT {
            // A requirement that depends on the message: the same answers as a layer's.
            self.auth.strict(APPROVE_PAYMENTS).check(claims).await?;
        }
        let by = claims.subject().unwrap_or_default().to_owned();
        Ok(Response::new(PayReply { paid: true, by }))
    }
}

/// The service, as tonic would serve it.
pub fn reports(auth: &Auth) -> ReportsServer<Api> {
    ReportsServer::new(Api { auth: auth.clone() })
}

/// The gRPC methods behind claimcheck's layers, and `GET /health`.
pub fn app(auth: &Auth) -> Router {
    let reports = reports(auth);
    // tonic's empty `Routes` answer unknown methods `UNIMPLEMENTED`.
    Routes::default()
        .into_axum_router()
        .merge(
            Router::new()
                .route_service(proto::LIST, reports.clone())
                .route_layer(auth.token_trusted(READ_REPORTS)),
        )
        .merge(
            Router::new()
                .route_service(proto::PAY, reports)
                .route_layer(auth.strict(CREATE_PAYMENTS)),
        )
        .layer(auth.layer())
        .route("/health", get(|| async { "ok" }))
}

/// Serves `app` with tonic (HTTP/2, and HTTP/1.1 for plain requests) until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(Routes::from(app))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}

/// A request carrying `token` as its bearer credentials, when there is one.
pub fn with_token<M>(message: M, token: Option<&str>) -> Request<M> {
    let mut request = Request::new(message);
    if let Some(value) = token.and_then(|t| format!("Bearer {t}").parse().ok()) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let configured = ["KINDE_ISSUER_URL", "KINDE_DOMAIN"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if configured {
        serve_configured().await
    } else {
        walk_through().await
    }
}

/// Serves against the Kinde business the environment names.
async fn serve_configured() -> ExitCode {
    let auth = match KindeConfig::from_env() {
        Ok(config) => Auth::kinde(&config).await,
        Err(error) => Err(error),
    };
    let auth = match auth {
        Ok(auth) => auth,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let bind = std::env::var("CLAIMCHECK_BIND").unwrap_or_else(|_| "127.0.0.1:50051".into());
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {bind}: {error}");
            return ExitCode::from(1);
        }
    };
    println!(
        "listening on http://{}",
        listener.local_addr().expect("bound")
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let served = serve(listener, app(&auth), shutdown).await;
    auth.change_log().shutdown();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("server error: {error}");
            ExitCode::from(1)
        }
    }
}

/// No configuration: a fake Kinde, the server, and a client calling it once per answer.
async fn walk_through() -> ExitCode {
    use claimcheck::Verifier;
    use claimcheck::live::{KindeManagementApi, LiveCheck};
    use claimcheck::testing::{DEFAULT_ORG, Endpoint, FakeKinde, Fault};

    let kinde = FakeKinde::start().await;
    let verifier = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .build()
        .expect("valid settings");
    verifier.warm_up().await;
    let (id, secret) = kinde.register_management_client();
    let source = KindeManagementApi::new(kinde.issuer(), id, secret).expect("valid issuer");
    let auth = Auth::new(verifier, LiveCheck::builder(source).build());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    println!(
        "fake Kinde at {}, gRPC API at http://{addr}\n",
        kinde.issuer()
    );
    tokio::spawn(serve(listener, app(&auth), std::future::pending()));
    let mut client = ReportsClient::connect(addr)
        .await
        .expect("the server is up");

    let reader = kinde
        .user_token("kp_reader")
        .permissions(["read:reports"])
        .sign();
    let stranger = kinde.user_token("kp_stranger").sign();
    let expired = kinde.user_token("kp_reader").expires_in(-3600).sign();
    let payer = kinde.user_token("kp_payer").sign();
    kinde.grant(DEFAULT_ORG, "kp_payer", "create:payments");
    let list = |token: Option<&str>| with_token(ListRequest {}, token);
    let pay = |amount: u64, token: &str| with_token(PayRequest { amount }, Some(token));

    let mut outcomes: Vec<(&str, Code, Result<String, Status>)> = vec![
        (
            "List, token has read:reports",
            Code::Ok,
            said(client.list(list(Some(&reader))).await),
        ),
        (
            "List, no token",
            Code::Unauthenticated,
            said(client.list(list(None)).await),
        ),
        (
            "List, expired token",
            Code::Unauthenticated,
            said(client.list(list(Some(&expired))).await),
        ),
        (
            "List, lacks read:reports",
            Code::PermissionDenied,
            said(client.list(list(Some(&stranger))).await),
        ),
        (
            "Pay 20, granted create:payments at Kinde",
            Code::Ok,
            said(client.pay(pay(20, &payer)).await),
        ),
        (
            "Pay 5000, no approve:payments (handler check)",
            Code::PermissionDenied,
            said(client.pay(pay(5_000, &payer)).await),
        ),
    ];
    // Kinde's permissions API goes down: a strict method fails closed, saying when to retry.
    let down = Fault::Status(503, vec![("retry-after".into(), "7".into())]);
    kinde.set_fault(Endpoint::ManagementPermissions, down);
    let newcomer = kinde.user_token("kp_newcomer").sign();
    outcomes.push((
        "Pay 20, Kinde's permissions API down",
        Code::Unavailable,
        said(client.pay(pay(20, &newcomer)).await),
    ));

    let mut failed = false;
    for (case, expected, outcome) in outcomes {
        let (code, text) = match outcome {
            Ok(text) => (Code::Ok, text),
            Err(status) => (status.code(), describe(&status)),
        };
        let mark = if code == expected { "ok " } else { "BAD" };
        failed |= code != expected;
        println!("{mark} {case:<48} {code:?}: {text}");
    }
    auth.change_log().shutdown();
    if failed {
        println!("\nsome answers were not the expected ones");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// A reply in a few words.
fn said<M: std::fmt::Debug>(reply: Result<Response<M>, Status>) -> Result<String, Status> {
    reply.map(|reply| format!("{:?}", reply.get_ref()))
}

/// A status's message, and its retry delay when it gives one.
fn describe(status: &Status) -> String {
    match status.get_details_retry_info().and_then(|r| r.retry_delay) {
        Some(delay) => format!("{} (retry in {:?})", status.message(), delay),
        None => status.message().to_owned(),
    }
}
