//! The bytes of upload bodies the server holds at once ([`UploadBuffer`], `UPLOAD_BUFFER_BYTES`).
//! What it protects is memory, so it counts bytes, not uploads: 32 small uploads hold less
//! than one large one. A body reserves its room as it is read: its declared `Content-Length`
//! up front where there is one, chunk by chunk where not. An upload that finds no room waits
//! for it, up to `UPLOAD_QUEUE_SECS`, then is refused (503 with `Retry-After`).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes a multipart body may carry beyond `MAX_UPLOAD_BYTES` for its framing: boundaries,
/// part headers, the file name. A body longer than that is refused as too large.
pub const FRAMING_ALLOWANCE: usize = 16 * 1024;

/// Upload bytes being read or held, across the instance. Cheap to clone.
#[derive(Clone)]
pub struct UploadBuffer {
    room: Arc<Semaphore>,
    capacity: u32,
    queue: Duration,
}

/// The room one request holds in the buffer, given back when the last clone is dropped (when
/// the request's response is ready: the body and what was decoded from it are gone by then).
#[derive(Clone, Default)]
pub struct BufferRoom(Rc<RefCell<Vec<OwnedSemaphorePermit>>>);

impl BufferRoom {
    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.0
            .borrow()
            .iter()
            .map(|permit| permit.num_permits())
            .sum()
    }
}

/// No room came free within the queue time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom;

impl UploadBuffer {
    /// A buffer of `bytes` (at most `u32::MAX`), where an upload waits up to `queue` for room.
    pub fn new(bytes: u64, queue: Duration) -> Self {
        let capacity = u32::try_from(bytes).unwrap_or(u32::MAX);
        Self {
            room: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            queue,
        }
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
        let wait = Arc::clone(&self.room).acquire_many_owned(bytes);
        match tokio::time::timeout(self.queue, wait).await {
            Ok(Ok(permit)) => {
                room.0.borrow_mut().push(permit);
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
        let buffer = UploadBuffer::new(100, Duration::from_secs(2));
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

        // More than the whole buffer is refused at once.
        let started = tokio::time::Instant::now();
        assert_eq!(
            buffer.reserve(&BufferRoom::default(), 101).await,
            Err(NoRoom)
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
