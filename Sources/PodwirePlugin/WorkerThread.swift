#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs `body` on a thread of its own while the caller goes on; `join()` waits for it.
///
/// A plain pthread, not Swift concurrency: podwire is one short-lived process with two pieces of
/// work worth overlapping (IPAM's file work while the kernel creates a veth pair), and it enters
/// no namespace on it. When no thread can be created, `body` runs on the caller's thread at once.
final class WorkerThread {
    private let body: () -> Void
    private var thread: pthread_t?

    init(_ body: @escaping () -> Void) {
        self.body = body
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        // musl's default thread stack is 128 KiB; give the body the room glibc's threads have.
        pthread_attr_setstacksize(&attributes, 8 << 20)
        let context = Unmanaged.passRetained(self).toOpaque()
        var created = pthread_t()
        let rc = pthread_create(&created, &attributes, { raw in
            Unmanaged<WorkerThread>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, context)
        if rc == 0 {
            thread = created
        } else {
            Unmanaged<WorkerThread>.fromOpaque(context).release()
            body()
        }
    }

    /// Waits until `body` has returned; everything it wrote is visible to the caller afterwards.
    func join() {
        guard let thread else { return }
        pthread_join(thread, nil)
        self.thread = nil
    }

    deinit { join() }
}
