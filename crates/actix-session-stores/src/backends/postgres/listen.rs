//! The read cache's channel between instances on PostgreSQL: one connection per process, on a
//! thread of its own, `LISTEN`s on the channel [`Names::postgres_cache_channel`] names and sends
//! this process's writes there with `pg_notify`, gathered for a few milliseconds (a write never
//! waits for it).
//!
//! While that connection is down the cache serves nothing from memory (what other instances
//! wrote meanwhile is unknown) and this process's own notices wait, folded into "everything
//! changed" past [`MAX_PENDING`] ids; after it reconnects the cache starts empty and the notices
//! go out.
//!
//! A payload is ids separated by spaces, or `*` for "everything".
//!
//! [`Names::postgres_cache_channel`]: crate::Names::postgres_cache_channel

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::connect::Opener;
use crate::cache::{Fanout, Invalidation, ReadCache};

/// The most ids waiting to be sent; past it they are sent as "everything changed".
pub(crate) const MAX_PENDING: usize = 10_000;

/// Ids per `pg_notify` payload (64 hex characters and a space each: under PostgreSQL's 8,000
/// bytes).
const IDS_PER_NOTICE: usize = 100;

/// How long the listener gathers this process's writes before it sends them: one `pg_notify`
/// for every write cost 21 % of PostgreSQL's upload throughput (bench/bench.sh, WM); gathered,
/// a notice carries the writes of a few milliseconds.
const GATHER: Duration = Duration::from_millis(5);

/// How often the listener checks that the process still has a cache.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The longest wait between two attempts to listen again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What this process has yet to tell the others.
#[derive(Default)]
struct Pending {
    ids: Vec<String>,
    all: bool,
}

/// The sending side, handed to every worker's records.
pub(crate) struct PgFanout {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl PgFanout {
    fn take(&self) -> Pending {
        std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl Fanout for PgFanout {
    fn tell(&self, what: Invalidation) {
        {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match what {
                Invalidation::All => {
                    pending.all = true;
                    pending.ids.clear();
                }
                Invalidation::Ids(ids) if !pending.all => {
                    pending.ids.extend(ids);
                    if pending.ids.len() > MAX_PENDING {
                        pending.all = true;
                        pending.ids.clear();
                    }
                }
                Invalidation::Ids(_) => {}
            }
        }
        self.wake.notify_one();
    }
}

/// Starts the listener of `cache` on `channel`, on a thread of its own, with connections
/// `opener` opens; the cache serves nothing until it listens. The thread ends once the cache
/// is dropped.
pub(crate) fn spawn(
    opener: Opener,
    channel: String,
    cache: &Arc<ReadCache>,
) -> std::io::Result<Arc<PgFanout>> {
    cache.set_serving(false);
    let fanout = Arc::new(PgFanout {
        pending: Mutex::default(),
        wake: Notify::new(),
    });
    let listener = Listener {
        opener,
        channel,
        cache: Arc::downgrade(cache),
        fanout: Arc::downgrade(&fanout),
    };
    std::thread::Builder::new()
        .name("session-cache-listener".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(listener.run()),
                Err(err) => log::error!("the session cache's listener cannot start: {err}"),
            }
        })?;
    Ok(fanout)
}

struct Listener {
    opener: Opener,
    channel: String,
    cache: Weak<ReadCache>,
    fanout: Weak<PgFanout>,
}

/// Why a listening connection ended.
enum Ended {
    /// The cache is gone: the process no longer needs a listener.
    Unused,
    /// The connection failed or was lost.
    Lost(String),
}

impl From<tokio_postgres::Error> for Ended {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Lost(crate::backends::pool::one_line(&err.to_string()))
    }
}

impl Listener {
    async fn run(self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.listen().await {
                Ended::Unused => return,
                Ended::Lost(why) => {
                    let Some(cache) = self.cache.upgrade() else {
                        return;
                    };
                    cache.set_serving(false);
                    log::warn!(
                        "the session cache's listener is not connected ({why}): reads go to \
                         the database until it listens again"
                    );
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Listens on one connection until it ends.
    async fn listen(&self) -> Ended {
        let (to, mut notices) = tokio::sync::mpsc::unbounded_channel();
        let client = match self.opener.client(Some(to)).await {
            Ok(client) => client,
            Err(err) => return Ended::Lost(err.to_string()),
        };
        let ready = async {
            client
                .batch_execute(&format!("LISTEN {}", quoted(&self.channel)))
                .await?;
            let pid: i32 = client
                .query_one("SELECT pg_backend_pid()", &[])
                .await?
                .get(0);
            let notify = client.prepare("SELECT pg_notify($1, $2)").await?;
            Ok::<_, Ended>((pid, notify))
        };
        let (own_pid, notify) = match ready.await {
            Ok(ready) => ready,
            Err(ended) => return ended,
        };
        let Some(cache) = self.cache.upgrade() else {
            return Ended::Unused;
        };
        cache.set_serving(true);
        drop(cache);
        log::info!("the session cache hears other instances' writes");
        loop {
            let Some(fanout) = self.fanout.upgrade() else {
                return Ended::Unused;
            };
            tokio::select! {
                notice = notices.recv() => {
                    let Some((from, payload)) = notice else {
                        return Ended::Lost("the connection closed".into());
                    };
                    let Some(cache) = self.cache.upgrade() else {
                        return Ended::Unused;
                    };
                    if from != own_pid {
                        cache.apply(&parsed(&payload));
                    }
                }
                () = fanout.wake.notified() => {
                    tokio::time::sleep(GATHER).await;
                    let pending = fanout.take();
                    for payload in payloads(&pending) {
                        if let Err(err) = client.execute(&notify, &[&self.channel, &payload]).await {
                            // Unsent: the others must drop everything once this reconnects.
                            fanout.tell(Invalidation::All);
                            return err.into();
                        }
                    }
                }
                () = tokio::time::sleep(CHECK_EVERY) => {
                    if self.cache.strong_count() == 0 {
                        return Ended::Unused;
                    }
                }
            }
        }
    }
}

/// `name` as a quoted SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The payloads that say `pending`.
fn payloads(pending: &Pending) -> Vec<String> {
    if pending.all {
        return vec!["*".to_owned()];
    }
    pending
        .ids
        .chunks(IDS_PER_NOTICE)
        .map(|ids| ids.join(" "))
        .collect()
}

/// What a payload says.
fn parsed(payload: &str) -> Invalidation {
    if payload == "*" {
        return Invalidation::All;
    }
    Invalidation::Ids(payload.split(' ').map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_say_ids_in_chunks_or_everything() {
        let ids: Vec<String> = (0..250).map(|n| format!("{n:064x}")).collect();
        let pending = Pending {
            ids: ids.clone(),
            all: false,
        };
        let sent = payloads(&pending);
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|p| p.len() < 8_000));
        let heard: Vec<String> = sent
            .iter()
            .flat_map(|p| match parsed(p) {
                Invalidation::Ids(ids) => ids,
                Invalidation::All => panic!("ids, not everything"),
            })
            .collect();
        assert_eq!(heard, ids);
        let all = Pending {
            ids: Vec::new(),
            all: true,
        };
        assert_eq!(parsed(&payloads(&all)[0]), Invalidation::All);
    }

    #[test]
    fn too_many_pending_ids_fold_into_everything() {
        let fanout = PgFanout {
            pending: Mutex::default(),
            wake: Notify::new(),
        };
        for n in 0..=MAX_PENDING {
            fanout.tell(Invalidation::Ids(vec![format!("{n:064x}")]));
        }
        let pending = fanout.take();
        assert!(pending.all);
        assert!(pending.ids.is_empty());
        fanout.tell(Invalidation::Ids(vec!["a".into()]));
        assert_eq!(fanout.take().ids, vec!["a".to_owned()]);
    }
}
