//! The bytes of upload bodies the server holds at once ([`UploadBuffer`], `UPLOAD_BUFFER_BYTES`).
//! What it protects is memory, so it counts bytes, not uploads: 32 small uploads hold less
//! than one large one. A body reserves its room as it is read: its declared `Content-Length`
//! up front where there is one, chunk by chunk where not. An upload that finds no room waits
//! for it, up to `UPLOAD_QUEUE_SECS`, then is refused (503 with `Retry-After`).
//!
//! One client address holds at most a quarter of the buffer (or one upload of the largest
//! size, if that is more): a client that stalls its bodies fills its own share, not everyone's.
//! Past its share, a client's next upload is refused at once (its own bodies are what hold the
//! room).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes a multipart body may carry beyond `MAX_UPLOAD_BYTES` for its framing: boundaries,
/// part headers, the file name. A body longer than that is refused as too large.
pub const FRAMING_ALLOWANCE: usize = 16 * 1024;

/// Bytes each client address holds in the buffer.
type Held = Arc<Mutex<HashMap<IpAddr, u64>>>;

/// Upload bytes being read or held, across the instance. Cheap to clone.
#[derive(Clone)]
pub struct UploadBuffer {
    room: Arc<Semaphore>,
    capacity: u32,
    queue: Duration,
    /// Bytes one client address may hold.
    share: u64,
    /// Bytes each client address holds now.
    held: Held,
}

/// The room one request holds in the buffer, given back when the last clone is dropped (when
/// the request's response is ready: the body and what was decoded from it are gone by then).
#[derive(Clone, Default)]
pub struct BufferRoom(Rc<Room>);

#[derive(Default)]
struct Room {
    permits: RefCell<Vec<OwnedSemaphorePermit>>,
    /// The client it is counted for, and the table it is counted in.
    client: Option<(IpAddr, Held)>,
    counted: Cell<u64>,
}

impl BufferRoom {
    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.0
            .permits
            .borrow()
            .iter()
            .map(|permit| permit.num_permits())
            .sum()
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        let Some((client, held)) = &self.client else {
            return;
        };
        let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bytes) = held.get_mut(client) {
            *bytes = bytes.saturating_sub(self.counted.get());
            if *bytes == 0 {
                held.remove(client);
            }
        }
    }
}

/// No room came free within the queue time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom;

impl UploadBuffer {
    /// A buffer of `bytes` (at most `u32::MAX`), where an upload waits up to `queue` for room
    /// and one client holds at most a quarter of it, or `largest` (one upload of the largest
    /// size) if that is more.
    pub fn new(bytes: u64, queue: Duration, largest: u64) -> Self {
        let capacity = u32::try_from(bytes).unwrap_or(u32::MAX);
        Self {
            room: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            queue,
            share: (u64::from(capacity) / 4).max(largest),
            held: Arc::default(),
        }
    }

    /// The room of a request from `client` (`None`: not counted for any client).
    pub fn room_for(&self, client: Option<IpAddr>) -> BufferRoom {
        let client = client.map(|ip| (super::client_key(ip), Arc::clone(&self.held)));
        BufferRoom(Rc::new(Room {
            permits: RefCell::default(),
            client,
            counted: Cell::new(0),
        }))
    }

    /// How long an upload waits for room.
    pub fn queue(&self) -> Duration {
        self.queue
    }

    /// Bytes free right now.
    pub fn free(&self) -> usize {
        self.room.available_permits()
    }

    /// Reserves `bytes` more for `room`, waiting up to the queue time for them.
    pub async fn reserve(&self, room: &BufferRoom, bytes: usize) -> Result<(), NoRoom> {
        if bytes == 0 {
            return Ok(());
        }
        // More than the whole buffer can never come free.
        let bytes = u32::try_from(bytes)
            .ok()
            .filter(|b| *b <= self.capacity)
            .ok_or(NoRoom)?;
        // The client's share first: counted before the wait, so its own uploads that wait
        // count too.
        if let Some((client, held)) = &room.0.client {
            let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
            let mine = held.entry(*client).or_default();
            if *mine + u64::from(bytes) > self.share {
                return Err(NoRoom);
            }
            *mine += u64::from(bytes);
            room.0.counted.set(room.0.counted.get() + u64::from(bytes));
        }
        let wait = Arc::clone(&self.room).acquire_many_owned(bytes);
        match tokio::time::timeout(self.queue, wait).await {
            Ok(Ok(permit)) => {
                room.0.permits.borrow_mut().push(permit);
                Ok(())
            }
            _ => Err(NoRoom),
        }
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

        // One client holds at most its share (here a quarter: 25 of 100); others are not
        // affected, and the share comes back with the room.
        let buffer = UploadBuffer::new(100, Duration::from_secs(2), 10);
        let client: IpAddr = "192.0.2.1".parse().expect("ip");
        let mine = buffer.room_for(Some(client));
        buffer.reserve(&mine, 20).await.expect("within the share");
        let started = tokio::time::Instant::now();
        let again = buffer.room_for(Some(client));
        assert_eq!(buffer.reserve(&again, 10).await, Err(NoRoom));
        assert_eq!(started.elapsed(), Duration::ZERO, "refused at once");
        let other = buffer.room_for(Some("192.0.2.2".parse().expect("ip")));
        assert_eq!(buffer.reserve(&other, 25).await, Ok(()));
        drop((mine, again));
        let later = buffer.room_for(Some(client));
        assert_eq!(buffer.reserve(&later, 25).await, Ok(()));

        // More than the whole buffer is refused at once.
        let started = tokio::time::Instant::now();
        assert_eq!(
            buffer.reserve(&BufferRoom::default(), 101).await,
            Err(NoRoom)
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
