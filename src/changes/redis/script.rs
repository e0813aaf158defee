//! The Redis side of the log: key names, the two Lua scripts (append, position) and stream ids.
//!
//! Both scripts run atomically on the server, so "remember this event was appended" and
//! "append it" can never be separated, and an epoch is created exactly once.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script, Value};

use crate::changes::record::{Change, unique_id};

/// Appends one record, unless its dedupe key says it was appended before; trims by time;
/// creates the epoch if there is none. Returns the entry id, or nil for a duplicate.
///
/// KEYS: stream, epoch hash, dedupe key (or the stream again when there is none).
/// ARGV: record, retention in ms, dedupe ttl in s, epoch candidate, "1" if deduped.
const APPEND: &str = r"
if ARGV[5] == '1' then
  if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3]) then return false end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'id', ARGV[4], 'since', now)
end
local epoch = redis.call('HGET', KEYS[2], 'id')
local minid = math.max(0, now - tonumber(ARGV[2]))
return redis.call('XADD', KEYS[1], 'MINID', '~', minid, '*', 'c', ARGV[1], 'e', epoch)
";

/// Where the log stands: creates the epoch if there is none, then returns
/// `{epoch id, epoch start ms, stream exists (0/1), last-generated-id, max-deleted-entry-id}`.
///
/// KEYS: stream, epoch hash. ARGV: epoch candidate.
const POSITION: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'id', ARGV[1], 'since', now)
end
local epoch = redis.call('HMGET', KEYS[2], 'id', 'since')
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {epoch[1], epoch[2], 0, '0-0', '0-0'}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last, deleted = '0-0', '0-0'
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
  if info[i] == 'max-deleted-entry-id' then deleted = info[i + 1] end
end
return {epoch[1], epoch[2], 1, last, deleted}
";

/// The keys of one log, all under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) stream: String,
    pub(super) epoch: String,
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            stream: format!("{prefix}:log"),
            epoch: format!("{prefix}:epoch"),
            prefix: prefix.to_owned(),
        }
    }

    fn dedupe(&self, key: &str) -> String {
        format!("{}:seen:{key}", self.prefix)
    }
}

/// Appends `change`; `None` when its dedupe key shows it was appended before.
pub(super) async fn append(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    change: &Change,
    retention: Duration,
    dedupe_for: Duration,
) -> RedisResult<Option<String>> {
    let dedupe = change.dedupe_key().map(|key| keys.dedupe(key));
    Script::new(APPEND)
        .key(&keys.stream)
        .key(&keys.epoch)
        .key(dedupe.as_deref().unwrap_or(&keys.stream))
        .arg(change.encode())
        .arg(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX))
        .arg(dedupe_for.as_secs().max(1))
        .arg(unique_id())
        .arg(if dedupe.is_some() { "1" } else { "0" })
        .invoke_async(conn)
        .await
}

/// Where the log stands, as [`POSITION`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Position {
    pub(super) epoch: String,
    /// When the epoch began (Redis's clock, Unix ms).
    pub(super) since_ms: i64,
    pub(super) exists: bool,
    pub(super) last_generated: StreamId,
    pub(super) max_deleted: StreamId,
}

pub(super) async fn position(conn: &mut impl ConnectionLike, keys: &Keys) -> RedisResult<Position> {
    let (epoch, since, exists, last, deleted): (String, i64, i64, String, String) =
        Script::new(POSITION)
            .key(&keys.stream)
            .key(&keys.epoch)
            .arg(unique_id())
            .invoke_async(conn)
            .await?;
    Ok(Position {
        epoch,
        since_ms: since,
        exists: exists == 1,
        last_generated: StreamId::parse(&last).unwrap_or_default(),
        max_deleted: StreamId::parse(&deleted).unwrap_or_default(),
    })
}

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct StreamId(u64, u64);

impl StreamId {
    pub(super) fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }

    /// The exclusive start for reading after this id (`(ms-seq`).
    pub(super) fn after(self) -> String {
        format!("({}-{}", self.0, self.1)
    }

    pub(super) fn is_zero(self) -> bool {
        self == Self::default()
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// One entry's fields: the record text and the epoch it was written in.
pub(super) fn fields(
    map: &std::collections::HashMap<String, Value>,
) -> (Option<String>, Option<String>) {
    let text = |name: &str| match map.get(name) {
        Some(Value::BulkString(bytes)) => String::from_utf8(bytes.clone()).ok(),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    (text("c"), text("e"))
}

/// Orders two ids given as text; unparsable ids sort first.
#[cfg(test)]
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    StreamId::parse(a)
        .unwrap_or_default()
        .cmp(&StreamId::parse(b).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::*;

    #[test]
    fn ids_order_numerically() {
        assert_eq!(compare("9-0", "10-0"), Ordering::Less);
        assert_eq!(compare("10-2", "10-10"), Ordering::Less);
        assert_eq!(compare("10-1", "10-1"), Ordering::Equal);
        assert_eq!(StreamId::parse("5-3").unwrap().after(), "(5-3");
        assert!(StreamId::parse("x").is_none());
        assert!(StreamId::parse("1-").is_none());
    }
}
