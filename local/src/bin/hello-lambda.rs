//! `hello-lambda`: the smallest `lambda_http` function, answering every
//! request `200 hello`. `scripts/bench` builds it with the functions' release
//! profile and compares their init, first response, memory and size with it.

use lambda_http::{Body, Error, Request, Response, run, service_fn};
use std::convert::Infallible;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|_: Request| async { Ok::<_, Infallible>(Response::new(Body::from("hello"))) })).await
}
