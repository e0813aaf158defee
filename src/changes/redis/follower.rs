//! The follower (replay, then `XREAD BLOCK` from the last id, with gap detection on every
//! connect) and the watchdog that closes the trust gate when the follower goes quiet.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use redis::AsyncCommands;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId as Entry, StreamRangeReply, StreamReadOptions, StreamReadReply};

use super::script::{self, Position, StreamId};
use super::{DEDUPE_FOR, Shared};
use crate::changes::apply::Applied;
use crate::changes::record::Change;

/// Entries read per call.
const BATCH: usize = 1_000;
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(1);

/// What the follower has read: the epoch of the log and the last entry id it applied.
#[derive(Debug, Default)]
struct Read {
    epoch: Option<String>,
    last: Option<StreamId>,
}

/// Why changes may have been lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gap {
    /// The log was reset (Redis restarted empty, or its keys were deleted).
    Reset,
    /// Entries after our position were trimmed before we read them.
    Trimmed,
}

/// Follows the log until the task is aborted: connect, check for gaps, catch up, then block
/// on new entries; on any error, reconnect with backoff and resume from the last id.
pub(super) async fn follow(shared: Arc<Shared>) {
    let mut read = Read::default();
    let mut retry = FIRST_RETRY;
    loop {
        let error = session(&shared, &mut read, &mut retry).await;
        shared.caught_up.store(false, Ordering::Release);
        tracing::debug!(target: "claimcheck::changes", %error, "change log follower reconnecting");
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// One connection's life; returns why it ended.
async fn session(shared: &Shared, read: &mut Read, retry: &mut Duration) -> redis::RedisError {
    let block = shared.config.block();
    // Its own connection: a blocking read would delay every command pipelined behind it.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(shared.config.cut_off_after))
        .set_response_timeout(Some(block + shared.config.cut_off_after));
    let client = &shared.config.client;
    let mut conn = match client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    {
        Ok(conn) => conn,
        Err(error) => return error,
    };
    if let Err(error) = catch_up(shared, read, &mut conn).await {
        return error;
    }
    *retry = FIRST_RETRY;
    let options = StreamReadOptions::default()
        .block(usize::try_from(block.as_millis()).unwrap_or(1_000))
        .count(BATCH);
    loop {
        let last = read.last.unwrap_or_default().to_string();
        let reply: Option<StreamReadReply> = match conn
            .xread_options(&[&shared.keys.stream], &[&last], &options)
            .await
        {
            Ok(reply) => reply,
            Err(error) => return error,
        };
        shared.touch();
        let entries = reply.map_or(Vec::new(), |r| {
            r.keys.into_iter().flat_map(|k| k.ids).collect::<Vec<_>>()
        });
        apply(shared, read, &entries);
        if entries.len() < BATCH {
            open_gate(shared);
        }
    }
}

/// Checks the log's epoch and trim point against what was read, handles a gap, then reads
/// everything after the last id (the whole retained log at start).
async fn catch_up(
    shared: &Shared,
    read: &mut Read,
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<()> {
    let position = script::position(conn, &shared.keys).await?;
    shared.touch();
    if let Some(gap) = gap(read, &position) {
        conservative(shared, read, gap, conn).await;
        if gap == Gap::Reset {
            read.last = None;
        }
    }
    read.epoch = Some(position.epoch);
    loop {
        let start = read.last.map_or_else(|| "-".to_owned(), StreamId::after);
        let reply: StreamRangeReply = conn
            .xrange_count(&shared.keys.stream, start, "+", BATCH)
            .await?;
        shared.touch();
        apply(shared, read, &reply.ids);
        if reply.ids.len() < BATCH {
            break;
        }
    }
    read.last.get_or_insert_default();
    open_gate(shared);
    Ok(())
}

/// What the position says about changes between our last id and now.
fn gap(read: &Read, position: &Position) -> Option<Gap> {
    let (Some(epoch), Some(last)) = (&read.epoch, read.last) else {
        // A replica that starts has no position: it trusts what the log retains.
        return None;
    };
    if *epoch != position.epoch
        || (!position.exists && !last.is_zero())
        || position.last_generated < last
    {
        Some(Gap::Reset)
    } else if position.max_deleted > last {
        Some(Gap::Trimmed)
    } else {
        None
    }
}

/// The conservative rule: drop every live entry and distrust every token issued before now.
/// For a reset, the loss is also appended to the new log (once, whoever finds it first), so a
/// replica started later does not trust those tokens either.
async fn conservative(shared: &Shared, read: &Read, gap: Gap, conn: &mut MultiplexedConnection) {
    shared.gaps.fetch_add(1, Ordering::Relaxed);
    let old = read.epoch.as_deref().unwrap_or_default();
    let last = read.last.unwrap_or_default();
    let key = match gap {
        Gap::Reset => format!("reset:{old}"),
        Gap::Trimmed => format!("trim:{old}:{last}"),
    };
    tracing::warn!(
        target: "claimcheck::changes",
        ?gap,
        last_read = %last,
        "changes may have been lost: every live entry dropped, every older token distrusted"
    );
    let change = Change::loss(&key, SystemTime::now()).for_issuer(shared.applier.issuer());
    shared.applier.apply(&change);
    if gap == Gap::Reset {
        let append = script::append(
            conn,
            &shared.keys,
            &change,
            shared.config.retention,
            DEDUPE_FOR,
        );
        if append.await.is_err() {
            shared.outbox.push(change);
        }
    }
}

/// Applies entries in order, remembering the last id.
fn apply(shared: &Shared, read: &mut Read, entries: &[Entry]) {
    for entry in entries {
        if let Some(id) = StreamId::parse(&entry.id) {
            read.last = Some(id);
        }
        let (text, _epoch) = script::fields(&entry.map);
        match text.as_deref().map(Change::decode) {
            Some(Ok(change)) => {
                if shared.applier.apply(&change) == Applied::Now {
                    shared.applied.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(Err(reason)) => skip(shared, &entry.id, reason),
            None => skip(shared, &entry.id, "entry has no record"),
        }
    }
}

fn skip(shared: &Shared, id: &str, reason: &str) {
    shared.skipped.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(target: "claimcheck::changes", entry = id, reason, "change log entry skipped");
}

/// Caught up and in contact: claims may be trusted again.
fn open_gate(shared: &Shared) {
    if shared.stopped.load(Ordering::Acquire) {
        return;
    }
    shared.caught_up.store(true, Ordering::Release);
    let freshness = shared.applier.freshness();
    if !freshness.is_trusting() {
        freshness.set_trusting(true);
        tracing::info!(target: "claimcheck::changes", "change log caught up: token-trusted routes trust claims again");
    }
}

/// Closes the trust gate whenever the follower has heard nothing for longer than the bound.
pub(super) async fn watch(shared: Arc<Shared>) {
    let bound = shared.config.cut_off_after;
    let tick = (bound / 4).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(tick).await;
        let silent = shared.silent_for();
        let freshness = shared.applier.freshness();
        if silent > bound && freshness.is_trusting() {
            freshness.set_trusting(false);
            shared.caught_up.store(false, Ordering::Release);
            tracing::warn!(
                target: "claimcheck::changes",
                silent_ms = u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
                bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
                "cut off from the change log: token-trusted routes decide live until it catches up"
            );
        }
    }
}
