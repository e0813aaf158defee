//! The Redis side of the log: key names, the Lua scripts (append, position, read) and stream
//! ids.
//!
//! Scripts run atomically on the server, so "remember this event was appended" and "append it"
//! can never be separated, entries are numbered without gaps, and an epoch is created once.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script, Value};

use crate::changes::record::{Change, MAX_RECORD_BYTES, unique_id};

/// Entries kept at most, whatever their ids say (one entry id far in the future, or a Redis
/// clock jump, would otherwise stop the trim by time). A follower that had not read what this
/// trims finds the gap by the entries' numbers.
const MAX_ENTRIES: u64 = 1_000_000;

/// Appends one record, unless its dedupe key says it was appended before; numbers it (the
/// epoch's counter, so a follower can tell a missing entry from no entry); trims by time, and by
/// count as a safety net; creates the epoch if there is none. Returns the entry id, or nil for a
/// duplicate. The dedupe key and the counter are written only once the `XADD` succeeded (a
/// script is not rolled back on error, so the order matters).
///
/// KEYS: stream, epoch hash, dedupe key (or the stream again when there is none).
/// ARGV: record, retention in ms, dedupe ttl in s, epoch candidate, "1" if deduped, max entries.
const APPEND: &str = r"
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'id', ARGV[4], 'since', now, 'seq', 0)
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  -- Ids past now + retention (a hostile entry, or a Redis clock that jumped) would stop the
  -- trim by time, or every later XADD: start the stream over. Followers take it as a reset.
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      local ms = tonumber(string.match(info[i + 1], '^(%d+)%-'))
      if ms and ms > now + tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) end
    end
  end
end
local epoch = redis.call('HGET', KEYS[2], 'id')
local n = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0') + 1
local minid = math.max(0, now - tonumber(ARGV[2]))
local id = redis.call('XADD', KEYS[1], 'MINID', '~', minid, '*', 'c', ARGV[1], 'e', epoch, 'n', n)
redis.call('HSET', KEYS[2], 'seq', n, 'last', now)
if ARGV[5] == '1' then redis.call('SET', KEYS[3], '1', 'EX', ARGV[3]) end
if redis.call('XLEN', KEYS[1]) > tonumber(ARGV[6]) then
  redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[6])
  -- Entries inside the retention may be gone: a replica that starts must not trust claims.
  redis.call('HSET', KEYS[2], 'capped', now)
end
return id
";

/// Where the log stands: creates the epoch if there is none, then returns `{epoch id, epoch
/// start ms, entries numbered so far, last-generated-id, Redis's now ms, last append ms, last
/// cap trim ms}`.
///
/// KEYS: stream, epoch hash. ARGV: epoch candidate.
const POSITION: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'id', ARGV[1], 'since', now, 'seq', 0)
end
local epoch = redis.call('HMGET', KEYS[2], 'id', 'since', 'seq', 'last', 'capped')
local last = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
return {epoch[1], tonumber(epoch[2] or now), tonumber(epoch[3] or '0') or 0, last, now,
  tonumber(epoch[4] or '0') or 0, tonumber(epoch[5] or '0') or 0}
";

/// Reads up to `ARGV[2]` entries after `ARGV[1]` (`-` from the start, `(id` after an id), one at a
/// time, stopping once the entries seen weigh over `ARGV[4]` bytes (at least one is always
/// read), with each record cut to nothing when over `ARGV[3]` bytes: a hostile entry of
/// megabytes costs the server a copy, not us a reply, and a flood of them cannot make one call
/// outlast the connection's timeout. Returns `{{id, record, number}, ...}`.
///
/// KEYS: stream.
const READ: &str = r"
local out = {}
local start, weight = ARGV[1], 0
for i = 1, tonumber(ARGV[2]) do
  local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 1)
  if #entries == 0 then break end
  local entry = entries[1]
  local record, n = '', ''
  local fields = entry[2]
  for j = 1, #fields, 2 do
    local name, value = fields[j], fields[j + 1]
    weight = weight + #value
    if name == 'c' and #value <= tonumber(ARGV[3]) then record = value end
    if name == 'n' and #value <= 20 then n = value end
  end
  out[i] = {entry[1], record, n}
  start = '(' .. entry[1]
  if weight > tonumber(ARGV[4]) then break end
end
return out
";

/// Bytes of entries one [`READ`] call looks at, at most (plus one entry).
const READ_WEIGHT: usize = 1 << 20;

/// The keys of one log, all under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) stream: String,
    pub(super) epoch: String,
    /// A counter written before `WAIT` (see `Shared::replicated`).
    pub(super) acks: String,
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            stream: format!("{prefix}:log"),
            epoch: format!("{prefix}:epoch"),
            acks: format!("{prefix}:acks"),
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
        .arg(MAX_ENTRIES)
        .invoke_async(conn)
        .await
}

/// Where the log stands, as [`POSITION`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Position {
    pub(super) epoch: String,
    /// When the epoch began, and now, on Redis's clock (Unix ms).
    pub(super) since_ms: i64,
    pub(super) now_ms: i64,
    /// Entries numbered in this epoch so far, and when the last was appended (0: never).
    pub(super) numbered: u64,
    pub(super) last_append_ms: i64,
    /// When the entry cap last trimmed the stream (0: never).
    pub(super) capped_ms: i64,
    pub(super) last_generated: StreamId,
}

pub(super) async fn position(conn: &mut impl ConnectionLike, keys: &Keys) -> RedisResult<Position> {
    type Reply = (String, i64, u64, String, i64, i64, i64);
    let (epoch, since_ms, numbered, last, now_ms, last_append_ms, capped_ms): Reply =
        Script::new(POSITION)
            .key(&keys.stream)
            .key(&keys.epoch)
            .arg(unique_id())
            .invoke_async(conn)
            .await?;
    Ok(Position {
        epoch,
        since_ms,
        now_ms,
        numbered,
        last_append_ms,
        capped_ms,
        last_generated: StreamId::parse(&last).unwrap_or_default(),
    })
}

/// One entry as a follower sees it: where it is, the record's bytes (empty when missing or
/// oversized) and its number in the epoch (when it has one).
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) id: String,
    pub(super) record: Vec<u8>,
    pub(super) number: Option<u64>,
}

/// Up to `count` entries after `after` (all from the start when `None`), records bounded.
pub(super) async fn read(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    after: Option<StreamId>,
    count: usize,
) -> RedisResult<Vec<Entry>> {
    let start = after.map_or_else(|| "-".to_owned(), StreamId::after);
    read_from(conn, keys, start, count).await
}

/// Whether the entry `id` is still in the stream.
pub(super) async fn holds(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    id: StreamId,
) -> RedisResult<bool> {
    let entries = read_from(conn, keys, id.to_string(), 1).await?;
    Ok(entries
        .first()
        .is_some_and(|entry| entry.id == id.to_string()))
}

async fn read_from(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    start: String,
    count: usize,
) -> RedisResult<Vec<Entry>> {
    let rows: Vec<(String, Vec<u8>, Vec<u8>)> = Script::new(READ)
        .key(&keys.stream)
        .arg(start)
        .arg(count)
        .arg(MAX_RECORD_BYTES)
        .arg(READ_WEIGHT)
        .invoke_async(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, record, number)| Entry {
            id,
            record,
            number: std::str::from_utf8(&number)
                .ok()
                .and_then(|n| n.parse().ok()),
        })
        .collect())
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

    /// The Redis time (Unix ms) at which the entry was appended.
    pub(super) fn ms(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// An entry from `XREAD`, as [`read`] gives them.
pub(super) fn entry(id: String, map: &std::collections::HashMap<String, Value>) -> Entry {
    let bytes = |name: &str| match map.get(name) {
        Some(Value::BulkString(bytes)) => Some(bytes.clone()),
        Some(Value::SimpleString(s)) => Some(s.clone().into_bytes()),
        _ => None,
    };
    Entry {
        id,
        record: bytes("c").unwrap_or_default(),
        number: bytes("n")
            .and_then(|n| String::from_utf8(n).ok())
            .and_then(|n| n.parse().ok()),
    }
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
