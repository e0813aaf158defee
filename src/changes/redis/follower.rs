//! The follower (replay, then `XREAD BLOCK` from the last id, with gap detection on every
//! connect) and the watchdog that closes the trust gate when the follower goes quiet.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use redis::AsyncCommands;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};

use super::Shared;
use super::script::{self, Entry, Position, StreamId};
use crate::changes::apply::Applied;
use crate::changes::record::Change;

/// Entries read per call (the replay also stops at about a megabyte per call).
const BATCH: usize = 100;
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// What the follower has read: the log's epoch, the last entry id and the last entry number.
#[derive(Debug, Default)]
struct Read {
    epoch: Option<String>,
    last: Option<StreamId>,
    number: Option<u64>,
}

/// Follows the log until the task is aborted: connect, check for gaps, catch up, then block
/// on new entries; on any error, reconnect with backoff and resume from the last id.
pub(super) async fn follow(shared: Arc<Shared>) {
    let mut read = Read::default();
    let mut retry = FIRST_RETRY;
    // The longest pause between reconnections: a block period (see `RedisConfig::grace`).
    let last_retry = shared.config.block().max(FIRST_RETRY);
    loop {
        let error = session(&shared, &mut read, &mut retry).await;
        if retry == FIRST_RETRY {
            // At start, or a connection that had caught up: say so once per outage.
            tracing::warn!(target: "claimcheck::changes", %error, "change log unreachable: reconnecting; token-trusted routes decide live once it has been out of reach longer than the bound, or until it is first replayed");
        } else {
            tracing::debug!(target: "claimcheck::changes", %error, "change log follower reconnecting");
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(last_retry);
    }
}

/// One connection's life; returns why it ended.
async fn session(shared: &Shared, read: &mut Read, retry: &mut Duration) -> redis::RedisError {
    let block = shared.config.block();
    // Its own connection: a blocking read would delay every command pipelined behind it. A
    // silent connection (a host replaced behind its address, a dropped route) is given up a
    // block period (at least half a second: a busy machine is not a dead link) after its
    // blocking read should have returned.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(shared.config.cut_off_after))
        .set_response_timeout(Some(block + block.max(Duration::from_millis(500))));
    let client = &shared.config.client;
    let mut conn = match client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    {
        Ok(conn) => conn,
        Err(error) => return error,
    };
    // Named, so an operator (or a test) can tell followers apart in CLIENT LIST.
    let name = format!("claimcheck-follower:{}", shared.config.prefix);
    let named: redis::RedisResult<()> = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(name)
        .query_async(&mut conn)
        .await;
    if let Err(error) = named {
        return error;
    }
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
        let entries: Vec<Entry> = reply.map_or(Vec::new(), |reply| {
            let ids = reply.keys.into_iter().flat_map(|key| key.ids);
            ids.map(|id| script::entry(id.id, &id.map)).collect()
        });
        apply(shared, read, &entries);
        if entries.is_empty() {
            // Idle: check the position as after a reconnect (O(1)). A stream started over
            // under a blocked reader (its ids now below our last id) is otherwise never seen.
            if let Err(error) = catch_up(shared, read, &mut conn).await {
                return error;
            }
        } else if entries.len() < BATCH {
            open_gate(shared);
        }
    }
}

/// Checks the log's epoch against what was read (a different one: Redis lost the log), reads
/// everything after the last id (the whole retained log at start), and checks that no entry
/// numbered before it asked is missing.
async fn catch_up(
    shared: &Shared,
    read: &mut Read,
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<()> {
    let position = script::position(conn, &shared.keys).await?;
    shared.touch();
    let reset = read
        .epoch
        .as_ref()
        .is_some_and(|epoch| *epoch != position.epoch)
        || read.last.is_some_and(|last| position.last_generated < last)
        || rewound(shared, read, &position, conn).await?;
    if reset {
        lost_log(shared, read, &position, conn).await;
        *read = Read::default();
    } else if read.epoch.is_none() {
        // A replica that starts trusts what the log retains; in an epoch that has just begun,
        // not before replicas that saw the previous one vanish have had time to say so.
        let age =
            Duration::from_millis(u64::try_from(position.now_ms - position.since_ms).unwrap_or(0));
        shared.hold_gate_for(shared.config.grace().saturating_sub(age));
        // The entry cap trimmed changes that are still inside the retention: some are gone.
        if position.now_ms - position.capped_ms < retention_ms(shared) {
            conservative(shared, Gap::Missing);
        }
    }
    read.epoch = Some(position.epoch.clone());
    loop {
        let entries = script::read(conn, &shared.keys, read.last, BATCH).await?;
        shared.touch();
        apply(shared, read, &entries);
        if entries.is_empty() {
            break;
        }
    }
    // Entries numbered before we asked and not read: deleted or trimmed by someone else (after
    // a reset, already counted).
    if read.number.unwrap_or(0) < position.numbered {
        let recent = position.now_ms - position.last_append_ms < retention_ms(shared);
        if recent && !reset {
            conservative(shared, Gap::Missing);
        }
        read.number = Some(position.numbered);
    }
    read.last.get_or_insert_default();
    open_gate(shared);
    Ok(())
}

/// Whether the log went back in time under us in the same epoch (Redis restarted from an older
/// snapshot, or failed over to a replica that had not received the newest entries): fewer
/// entries numbered than we read, or the last entry we read gone though the trim by time
/// cannot have removed it. New appends reuse the lost numbers and ids, so neither the epoch nor
/// `last-generated-id` reveal it.
async fn rewound(
    shared: &Shared,
    read: &Read,
    position: &Position,
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<bool> {
    if read.epoch.as_ref() != Some(&position.epoch) {
        return Ok(false);
    }
    if read.number.is_some_and(|number| position.numbered < number) {
        return Ok(true);
    }
    match read.last {
        Some(last) if last.ms() > position.now_ms - retention_ms(shared) => {
            Ok(!script::holds(conn, &shared.keys, last).await?)
        }
        _ => Ok(false),
    }
}

fn retention_ms(shared: &Shared) -> i64 {
    i64::try_from(shared.config.retention.as_millis()).unwrap_or(i64::MAX)
}

/// Why changes may have been lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gap {
    /// The log was reset (Redis restarted empty, or its epoch was deleted).
    Reset,
    /// Entries appended within the retention were deleted or trimmed before we read them.
    Missing,
}

/// The conservative rule, on this replica: drop every live entry and distrust every token
/// issued before now. Not subject to the memory of applied ids: every loss counts.
fn conservative(shared: &Shared, gap: Gap) -> Change {
    shared.gaps.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        target: "claimcheck::changes",
        ?gap,
        "changes may have been lost: every live entry dropped, every older token distrusted"
    );
    let issuer = shared.applier.issuer();
    let key = format!("{issuer}:{gap:?}");
    let change = Change::loss(&key, SystemTime::now()).for_issuer(issuer);
    shared.applier.apply_effect(&change);
    change
}

/// A reset: the conservative rule here, and the loss recorded in the new log (once per issuer
/// and lost state, whoever finds it first; replicas that find it at different points may each
/// record it, which is harmless) so that replicas started later distrust those tokens too.
async fn lost_log(
    shared: &Shared,
    read: &Read,
    position: &Position,
    conn: &mut MultiplexedConnection,
) {
    let mut change = conservative(shared, Gap::Reset);
    let old = read.epoch.as_deref().unwrap_or_default();
    // Names the loss so that replicas finding it agree: the old and new epochs, or within one
    // epoch (a rewind, a deleted stream) how far we had read (caught-up replicas agree).
    let lost = if old == position.epoch {
        format!("{old}:{}", read.number.unwrap_or(0))
    } else {
        format!("{old}:{}", position.epoch)
    };
    let issuer = shared.applier.issuer();
    change.dedupe = Some(format!("loss:{issuer}:reset:{lost}").into());
    if shared.append(conn, &change).await.is_err() {
        shared.outbox.push(change);
    }
}

/// Applies entries in order, remembering the last id and number; a number that skips ahead
/// means entries were deleted under us.
fn apply(shared: &Shared, read: &mut Read, entries: &[Entry]) {
    let now_ms = crate::clock::unix_ms(SystemTime::now());
    let oldest_kept = now_ms - retention_ms(shared);
    for entry in entries {
        // Entries missing right after one older than the retention were trimmed by time
        // (always a prefix of the stream): harmless. After a recent one, something lost them.
        let previous_recent = read.last.is_some_and(|last| last.ms() > oldest_kept);
        if let Some(id) = StreamId::parse(&entry.id) {
            read.last = Some(id);
            // The id is Redis's clock at the append; ours may differ by a little.
            let lag_ms = u64::try_from(now_ms - id.ms()).unwrap_or(0);
            crate::metrics::change_log_lag(Duration::from_millis(lag_ms));
        }
        if let Some(number) = entry.number {
            if previous_recent && read.number.is_some_and(|last| number > last + 1) {
                conservative(shared, Gap::Missing);
            }
            read.number = Some(read.number.map_or(number, |last| last.max(number)));
        }
        let record = std::str::from_utf8(&entry.record).map_err(|_| "record is not UTF-8");
        match record.and_then(Change::decode) {
            Ok(change) => {
                if shared.applier.apply(&change) == Applied::Now {
                    shared.applied.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(reason) => skip(shared, &entry.id, reason),
        }
    }
}

fn skip(shared: &Shared, id: &str, reason: &str) {
    shared.skipped.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(target: "claimcheck::changes", entry = id, reason, "change log entry skipped");
}

/// Caught up and in contact: claims may be trusted again (unless held, see
/// [`Shared::hold_gate_for`]).
fn open_gate(shared: &Shared) {
    if shared.stopped.load(Ordering::Acquire) || shared.gate_held() {
        return;
    }
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
            tracing::warn!(
                target: "claimcheck::changes",
                silent_ms = u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
                bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
                "cut off from the change log: token-trusted routes decide live until it catches up"
            );
        }
    }
}
