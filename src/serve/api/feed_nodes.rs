//! Feeds another node of the cluster runs. A feed lives on the node it was made on (its
//! publisher pushes there): any node answers for it by passing the request to that node, and
//! a session on it is made there, where its stream is. A node without the room or the
//! listener for a new feed passes it to one that has them.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use axum::response::Response;

use super::elsewhere::{FORWARDED, pass_on};
use super::error::ApiError;
use super::service::Service;
use crate::session::CloudOps;
use crate::store::Cluster;

/// How long the other nodes are given to say whether they run a feed.
const ASK_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// The API address of the other live node that runs feed `id`, if one does. A request
/// another node passed here is not passed on again.
pub(super) async fn node_of<C: CloudOps + 'static>(
    svc: &Service<C>,
    id: &str,
    headers: &HeaderMap,
) -> Option<String> {
    // Only an id as this house makes them goes into another node's URL.
    if headers.contains_key(FORWARDED) || !crate::media::input::is_feed_id(id) {
        return None;
    }
    let nodes = svc.journal.cluster()?.nodes().await.ok()?;
    let me = crate::store::process_identity();
    let asks = nodes.into_iter().filter(|n| n.id != me).map(|node| {
        let ask = ask(svc, &node.api_url, &format!("/v1/feeds/{id}"), headers);
        async move {
            ask.send()
                .await
                .ok()
                .filter(|a| a.status().is_success())
                .map(|_| node.api_url)
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .next()
}

/// A GET of `path` on another node, with the client's token, marked as passed on.
fn ask<C: CloudOps + 'static>(
    svc: &Service<C>,
    node: &str,
    path: &str,
    headers: &HeaderMap,
) -> reqwest::RequestBuilder {
    let ask = svc
        .peers
        .get(format!("{}{path}", node.trim_end_matches('/')))
        .header(FORWARDED, "1")
        .timeout(ASK_WITHIN);
    match headers.get(axum::http::header::AUTHORIZATION) {
        Some(auth) => ask.header(axum::http::header::AUTHORIZATION, auth),
        None => ask,
    }
}

/// Passes a request for feed `id` to the node that runs it; `None` when no node does.
pub(super) async fn answer<C: CloudOps + 'static>(
    svc: &Service<C>,
    id: &str,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Option<Bytes>,
) -> Option<Result<Response, ApiError>> {
    let node = node_of(svc, id, headers).await?;
    Some(pass_on(svc, &node, method, path, headers, body).await)
}

/// Every other live node's feeds, as each lists its own.
pub(super) async fn others<C: CloudOps + 'static>(
    svc: &Service<C>,
    headers: &HeaderMap,
) -> Vec<serde_json::Value> {
    let Some(cluster) = svc.journal.cluster() else {
        return Vec::new();
    };
    if headers.contains_key(FORWARDED) {
        return Vec::new();
    }
    let Ok(nodes) = cluster.nodes().await else {
        return Vec::new();
    };
    let me = crate::store::process_identity();
    let asks = nodes.into_iter().filter(|n| n.id != me).map(|node| {
        let ask = ask(svc, &node.api_url, "/v1/feeds", headers);
        async move {
            let answer = ask.send().await.ok()?;
            let listed: serde_json::Value =
                serde_json::from_slice(&answer.bytes().await.ok()?).ok()?;
            listed["feeds"].as_array().cloned()
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect()
}

/// Makes a feed on another live node of the cluster, the one with the most free room first
/// (by their last renewals), when one takes it: its answer. `None` outside a cluster, for a
/// request passed here already, or when no node takes it.
pub(super) async fn place<C: CloudOps + 'static>(
    svc: &Service<C>,
    headers: &HeaderMap,
    body: Bytes,
) -> Option<Response> {
    if headers.contains_key(FORWARDED) {
        return None;
    }
    let mut nodes = svc.journal.cluster()?.nodes().await.ok()?;
    let me = crate::store::process_identity();
    nodes.retain(|n| n.id != me && n.live && !n.draining && !n.busy);
    nodes.sort_by_key(|n| std::cmp::Reverse(i64::from(n.capacity) - i64::from(n.load)));
    for node in nodes {
        let path = "/v1/feeds";
        let answer = pass_on(
            svc,
            &node.api_url,
            Method::POST,
            path,
            headers,
            Some(body.clone()),
        );
        match answer.await {
            Ok(made) if made.status() == axum::http::StatusCode::CREATED => {
                tracing::info!(node = %node.api_url, "feed made on another node");
                return Some(made);
            }
            _ => continue,
        }
    }
    None
}
