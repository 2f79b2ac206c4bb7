//! The bytes of upload bodies the server holds at once ([`UploadBuffer`], `UPLOAD_BUFFER_BYTES`).
//! What it protects is memory, so it counts bytes, not uploads: 32 small uploads hold less
//! than one large one. A body reserves its room as it is read: its declared `Content-Length`
//! up front where there is one, chunk by chunk where not. An upload that finds no room waits
//! for it, up to `UPLOAD_QUEUE_SECS`, then is refused (503 with `Retry-After`).
//!
//! The buffer is shared fairly ([`FairShare`]): one client address holds at most a quarter of
//! it (or one upload of the largest size, if that is more) while other clients wait. Past its
//! share, a client's upload queues like anyone else's and lets the others go first; a client
//! alone (or many people behind one NAT address on an otherwise quiet server) may use all of
//! it.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

pub use super::fair::NoRoom;
use super::fair::{FairShare, Held};

/// Bytes a multipart body may carry beyond `MAX_UPLOAD_BYTES` for its framing: boundaries,
/// part headers, the file name. A body longer than that is refused as too large.
pub const FRAMING_ALLOWANCE: usize = 16 * 1024;

/// Upload bytes being read or held, across the instance. Cheap to clone.
#[derive(Clone)]
pub struct UploadBuffer {
    room: FairShare,
    queue: Duration,
}

/// The room one request holds in the buffer, given back when the last clone is dropped (when
/// the request's response is ready: the body and what was decoded from it are gone by then).
#[derive(Clone, Default)]
pub struct BufferRoom(Rc<Room>);

#[derive(Default)]
struct Room {
    held: RefCell<Vec<Held>>,
    /// The client it is counted for.
    client: Option<IpAddr>,
}

impl BufferRoom {
    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.0
            .held
            .borrow()
            .iter()
            .map(|held| held.units() as usize)
            .sum()
    }
}

impl UploadBuffer {
    /// A buffer of `bytes` (at most `u32::MAX`), where an upload waits up to `queue` for room
    /// and one client holds at most a quarter of it, or `largest` (one upload of the largest
    /// size) if that is more, while others wait.
    pub fn new(bytes: u64, queue: Duration, largest: u64) -> Self {
        let capacity = bytes.min(u64::from(u32::MAX));
        Self {
            room: FairShare::new(capacity, (capacity / 4).max(largest)),
            queue,
        }
    }

    /// The room of a request from `client` (`None`: not counted for any client).
    pub fn room_for(&self, client: Option<IpAddr>) -> BufferRoom {
        BufferRoom(Rc::new(Room {
            held: RefCell::default(),
            client: client.map(super::client_key),
        }))
    }

    /// How long an upload waits for room.
    pub fn queue(&self) -> Duration {
        self.queue
    }

    /// Bytes free right now.
    pub fn free(&self) -> usize {
        self.room.free() as usize
    }

    /// Reserves `bytes` more for `room`, waiting up to the queue time for them.
    pub async fn reserve(&self, room: &BufferRoom, bytes: usize) -> Result<(), NoRoom> {
        if bytes == 0 {
            return Ok(());
        }
        let held = self
            .room
            .acquire(room.0.client, bytes as u64, self.queue)
            .await?;
        room.0.held.borrow_mut().push(held);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bytes_are_reserved_waited_for_and_given_back() {
        let buffer = UploadBuffer::new(100, Duration::from_secs(2), 100);
        let first = BufferRoom::default();
        buffer.reserve(&first, 60).await.expect("room");
        assert_eq!((first.bytes(), buffer.free()), (60, 40));

        // 50 do not fit: the wait ends after the queue time.
        let second = BufferRoom::default();
        let started = tokio::time::Instant::now();
        assert_eq!(buffer.reserve(&second, 50).await, Err(NoRoom));
        assert_eq!(started.elapsed(), Duration::from_secs(2));

        // They fit once the first request's room is given back during the wait.
        let release = async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            drop(first);
        };
        let (reserved, ()) = tokio::join!(buffer.reserve(&second, 50), release);
        assert_eq!(reserved, Ok(()));
        assert_eq!(buffer.free(), 50);

        // A client alone may pass its share (here a quarter: 25 of 100) while a share stays
        // free: its second upload is not refused while no one else waits.
        let buffer = UploadBuffer::new(100, Duration::from_secs(2), 10);
        let client: IpAddr = "192.0.2.1".parse().expect("ip");
        let mine = buffer.room_for(Some(client));
        buffer.reserve(&mine, 20).await.expect("within the share");
        let again = buffer.room_for(Some(client));
        assert_eq!(
            buffer.reserve(&again, 55).await,
            Ok(()),
            "alone: past the share"
        );
        let started = tokio::time::Instant::now();
        let last_share = buffer.room_for(Some(client));
        assert_eq!(
            buffer.reserve(&last_share, 1).await,
            Err(NoRoom),
            "never the last share"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        // Another client's upload waits for room, and gets it before the first client's next.
        let other = buffer.room_for(Some("192.0.2.2".parse().expect("ip")));
        let third = buffer.room_for(Some(client));
        let release = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            drop(again);
        };
        let started = tokio::time::Instant::now();
        let (theirs, mine_again, ()) = tokio::join!(
            buffer.reserve(&other, 60),
            async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                buffer.reserve(&third, 60).await
            },
            release
        );
        assert_eq!(theirs, Ok(()));
        assert_eq!(mine_again, Err(NoRoom), "the other client went first");
        assert_eq!(started.elapsed(), Duration::from_millis(2001));
        drop(mine);

        // More than the whole buffer is refused at once.
        let started = tokio::time::Instant::now();
        assert_eq!(
            buffer.reserve(&BufferRoom::default(), 101).await,
            Err(NoRoom)
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
