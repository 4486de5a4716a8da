internal import CNFTables
import LinuxSystem
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A NETLINK_NETFILTER socket for ctnetlink, in the calling thread's network namespace: lists
/// conntrack entries and deletes them, by filter where the kernel can or one by one by tuple, as
/// `conntrack -L` and `conntrack -D` do, without running either.
package final class ConntrackSocket {
    private var fd: Int32
    private var sequence: UInt32 = 0
    /// Not zeroed (see NFTSocket): a listing of a few entries should not fault in the whole buffer.
    /// Made at the first listing or delete: a filtered flush, all most calls send, reads only
    /// acks, and a buffer this size is an mmap and a munmap of its own.
    private var receiveBuffer: UnsafeMutableRawBufferPointer?
    private var receive: UnsafeMutableRawBufferPointer {
        if let receiveBuffer { return receiveBuffer }
        let made = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.receiveSize, alignment: 16)
        receiveBuffer = made
        return made
    }
    /// Enough for an ack with the kernel's extended-ack text.
    static let ackBufferSize = 4096

    /// Large enough for any dump message: the kernel fills dump messages up to 32 KiB (and a
    /// truncated one would be lost).
    static let receiveSize = 1 << 17
    /// Deletes per send: each is acked, and the acks must fit in the socket's receive buffer
    /// (an ack that does not is dropped, and recv says ENOBUFS). 64 acks are far below the default.
    static let deletesPerSend = 64
    /// Attempts at a dump the kernel said was interrupted (or whose socket overran).
    static let dumpAttempts = 3

    package init() throws(NetlinkError) {
        fd = try Self.open()
    }

    deinit {
        close(fd)
        receiveBuffer?.deallocate()
    }

    /// Acks that do not echo the whole request are 36 bytes each, however long the delete.
    private static func open() throws(NetlinkError) -> Int32 {
        try openNetfilterSocket()
    }

    /// A fresh socket in place of this one: a dump in progress dies with its socket, so a new
    /// dump can start after an overrun (the old one would answer EBUSY while it is still running).
    private func reopen() throws(NetlinkError) {
        let replacement = try Self.open()
        close(fd)
        fd = replacement
    }

    // MARK: Listing

    /// Entries of one family matching the filter.
    ///
    /// The kernel applies what it can of `matching` itself (CTA_FILTER, see
    /// `ConntrackMessage.filterAttributes`), so a node with 100k entries does not send them all;
    /// every entry is re-checked with `matching.matches` here. A kernel that refuses the filter
    /// (EINVAL or EOPNOTSUPP: 5.8's first version refused every flag; 6.18 answers EINVAL to a flag
    /// it does not know) is asked for the whole family instead; one older than 5.8 ignores the
    /// attributes and sends the whole family anyway.
    /// A dump the kernel flags NLM_F_DUMP_INTR, or that a socket overrun (ENOBUFS) may have cut,
    /// is asked for again, a few times.
    package func entries(family: IPFamily, matching filter: ConntrackFilter) throws(NetlinkError) -> [ConntrackEntry] {
        try entries(family: family, matching: filter, kernelFilter: ConntrackMessage.filterAttributes(filter, family: family))
    }

    /// `entries(family:matching:)` with the kernel asked to filter with `filtered` (the tests'
    /// way to see a refused filter fall back).
    func entries(family: IPFamily, matching filter: ConntrackFilter, kernelFilter filtered: [NetlinkAttribute])
        throws(NetlinkError) -> [ConntrackEntry] {
        // A reply source of the other family matches nothing of this one.
        if let source = filter.replySource, source.family != family { return [] }
        if !filtered.isEmpty {
            do {
                return try dump(family: family, attributes: filtered, filter: filter)
            } catch let error where error.cause == .errno(EINVAL) || error.cause == .errno(EOPNOTSUPP) {
                // The kernel's filter is an optimisation: without it, the same answer, larger.
            }
        }
        return try dump(family: family, attributes: [], filter: filter)
    }

    private func dump(family: IPFamily, attributes: [NetlinkAttribute], filter: ConntrackFilter) throws(NetlinkError) -> [ConntrackEntry] {
        var attempt = 0
        while true {
            attempt += 1
            let sequence = nextSequence()
            try send(ConntrackMessage.dumpRequest(family: family, attributes: attributes, sequence: sequence),
                     what: ConntrackMessage.listCommand(family: family, filter: filter))
            var entries: [ConntrackEntry] = []
            var interrupted = false
            receiving: while true {
                let count = retryingInterrupts { recv(fd, receive.baseAddress, Self.receiveSize, 0) }
                if count < 0 {
                    let code = errno
                    guard code == ENOBUFS else {
                        throw NetlinkError("read the answer to \(ConntrackMessage.listCommand(family: family, filter: filter))", errno: code)
                    }
                    // Something the kernel had for this socket was dropped: perhaps part of the
                    // dump. Start over on a new socket (this one's dump may still be running).
                    guard attempt < Self.dumpAttempts else {
                        throw NetlinkError(ConntrackMessage.listCommand(family: family, filter: filter), errno: ENOBUFS)
                    }
                    try reopen()
                    interrupted = true
                    break receiving
                }
                if count == 0 {
                    throw NetlinkError("\(ConntrackMessage.listCommand(family: family, filter: filter)): the kernel did not answer", errno: EPROTO)
                }
                for message in NetlinkMessage.Messages(UnsafeRawBufferPointer(rebasing: receive[0..<count]))
                where message.sequence == sequence {
                    if message.flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                    switch message.type {
                    case UInt16(NLMSG_ERROR):
                        let code = message.errorCode ?? EBADMSG
                        if code != 0 {
                            throw NetlinkError(ConntrackMessage.listCommand(family: family, filter: filter)
                                + (message.errorText.map { " (kernel: \($0))" } ?? ""), errno: code)
                        }
                    case UInt16(NLMSG_DONE):
                        let status = message.doneStatus
                        if status < 0 { throw NetlinkError(ConntrackMessage.listCommand(family: family, filter: filter), errno: -status) }
                        break receiving
                    default:
                        if let entry = ConntrackMessage.entry(message.payload, family: family), filter.matches(entry) {
                            entries.append(entry)
                        }
                    }
                }
            }
            if !interrupted { return entries }
            guard attempt < Self.dumpAttempts else {
                throw NetlinkError("\(ConntrackMessage.listCommand(family: family, filter: filter)): the table kept changing during the dump",
                                   errno: EAGAIN)
            }
        }
    }

    // MARK: Forgetting

    /// Deletes every entry of `family` that matches one of `filters`, as `conntrack -D` with each
    /// filter's options would.
    ///
    /// Where the kernel can (6.12 and later, and a filter it compares exactly: see
    /// `ConntrackMessage.flushRequest`), it deletes them itself: one request per filter, all in
    /// one send, each one walk of its table that skips empty buckets (~0.15 ms for 262144 buckets
    /// and a few entries, against ~9 ms for a dump, which locks every bucket). Otherwise (a kernel
    /// that refuses a filtered flush says EINVAL or EOPNOTSUPP, and deletes nothing) the entries
    /// are listed with one dump and deleted by tuple, unless the namespace tracks no connection.
    /// Returns how many of `filters` the kernel applied itself.
    @discardableResult
    package func forget(family: IPFamily, matching filters: [ConntrackFilter]) throws(NetlinkError) -> Int {
        try forget(family: family, matching: filters, kernelFlush: true)
    }

    /// `forget(family:matching:)`, with the kernel's filtered flush not even tried when
    /// `kernelFlush` is false (the tests' way to run the listing path on a kernel that has it).
    func forget(family: IPFamily, matching filters: [ConntrackFilter], kernelFlush: Bool) throws(NetlinkError) -> Int {
        // Arrays of Int only (no dictionary, no text unless something fails): each generic type a
        // call instantiates costs its metadata at run time, on every ADD.
        var buffer: [UInt8] = []
        var sent: [Int] = [] // the filter of each request, in sequence order from firstSequence
        var unapplied: [Int] = []
        let firstSequence = sequence &+ 1
        for index in filters.indices {
            guard kernelFlush, let request = ConntrackMessage.flushRequest(family: family, filter: filters[index],
                                                                            sequence: sequence &+ 1) else {
                unapplied.append(index)
                continue
            }
            _ = nextSequence()
            buffer += request
            sent.append(index)
        }
        if !sent.isEmpty {
            try send(buffer, what: ConntrackMessage.flushCommand(family: family, filter: filters[sent[0]]))
            var answers = [Int](repeating: -1, count: sent.count) // each request's errno, once answered
            var waiting = sent.count
            var refusalText: (slot: Int, text: String?)?
            // As for deletes: nfnetlink has answered every message of the send inside sendto().
            try withUnsafeTemporaryAllocation(byteCount: Self.ackBufferSize, alignment: 16) { (acks) throws(NetlinkError) in
                while waiting > 0 {
                    let count = retryingInterrupts { recv(fd, acks.baseAddress, acks.count, Int32(MSG_DONTWAIT)) }
                    if count < 0 {
                        let code = errno
                        if code == EAGAIN || code == EWOULDBLOCK { break }
                        throw NetlinkError("read the kernel's answer to \(ConntrackMessage.flushCommand(family: family, filter: filters[sent[0]]))",
                                           errno: code)
                    }
                    for message in NetlinkMessage.Messages(UnsafeRawBufferPointer(rebasing: acks[0..<count])) {
                        let slot = Int(message.sequence &- firstSequence)
                        guard let code = message.errorCode, slot >= 0, slot < answers.count, answers[slot] < 0 else { continue }
                        answers[slot] = Int(code)
                        waiting -= 1
                        if code != 0, refusalText.map({ slot < $0.slot }) ?? true { refusalText = (slot, message.errorText) }
                    }
                }
            }
            for slot in answers.indices {
                let index = sent[slot]
                switch answers[slot] {
                case 0: continue
                case Int(EINVAL), Int(EOPNOTSUPP): unapplied.append(index)
                case -1:
                    throw NetlinkError("\(ConntrackMessage.flushCommand(family: family, filter: filters[index])): the kernel did not answer",
                                       errno: EPROTO)
                case let code:
                    let text = refusalText?.slot == slot ? refusalText?.text : nil
                    throw NetlinkError(ConntrackMessage.flushCommand(family: family, filter: filters[index])
                        + (text.map { " (kernel: \($0))" } ?? ""), errno: Int32(code))
                }
            }
        }
        guard !unapplied.isEmpty else { return filters.count }
        // The kernel's flush returns at once when the namespace tracks nothing; a dump walks the
        // table whatever it holds, so it is not asked for then (nf_conntrack_count is per namespace).
        guard (try? Sysctl.read("net/netfilter/nf_conntrack_count")) != "0" else { return filters.count - unapplied.count }
        let left = unapplied.sorted().map { filters[$0] }
        let entries = try entries(family: family, matching: Self.widest(left))
        let matching = entries.filter { entry in left.contains { $0.matches(entry) } }
        if !matching.isEmpty { _ = try delete(matching) }
        return filters.count - unapplied.count
    }

    /// The conditions `filters` all share: one dump with it lists every entry any of them matches.
    static func widest(_ filters: [ConntrackFilter]) -> ConntrackFilter {
        guard let first = filters.first else { return ConntrackFilter() }
        func shared<T: Equatable>(_ value: (ConntrackFilter) -> T?) -> T? {
            filters.allSatisfy { value($0) == value(first) } ? value(first) : nil
        }
        return ConntrackFilter(proto: shared(\.proto), originalDestinationPort: shared(\.originalDestinationPort),
                               replySource: shared(\.replySource), translation: shared(\.translation))
    }

    // MARK: Deleting

    /// Deletes each entry by its original tuple (and zone), as `conntrack -D` does for each entry
    /// it matched: IPCTNL_MSG_CT_DELETE, up to `deletesPerSend` in one send, every ack read back.
    /// An entry already gone (ENOENT: expired, or deleted by someone else) is not an error.
    /// Returns how many the kernel deleted.
    ///
    /// If acks were lost (ENOBUFS), the entries whose acks are missing are sent again once: one
    /// the first message did delete answers ENOENT then and is not counted. The first other
    /// refusal is thrown after the rest of its send's acks are read.
    package func delete(_ entries: [ConntrackEntry]) throws(NetlinkError) -> Int {
        var deleted = 0
        var start = entries.startIndex
        while start < entries.endIndex {
            let end = min(start + Self.deletesPerSend, entries.endIndex)
            deleted += try deleteBatch(entries[start..<end], resendLost: true)
            start = end
        }
        return deleted
    }

    private func deleteBatch(_ batch: ArraySlice<ConntrackEntry>, resendLost: Bool) throws(NetlinkError) -> Int {
        var buffer: [UInt8] = []
        var pending: [UInt32: Int] = [:]
        for index in batch.indices {
            let entry = batch[index]
            // Both addresses must be of one family, the message's: a tuple the kernel could not
            // parse is refused here, and nothing is sent for it.
            guard entry.original.source.family == entry.original.destination.family else {
                throw NetlinkError(ConntrackMessage.deleteCommand(entry.original, zone: entry.zone), errno: EINVAL)
            }
            let sequence = nextSequence()
            ConntrackMessage.appendDelete(to: &buffer, original: entry.original, zone: entry.zone, sequence: sequence)
            pending[sequence] = index
        }
        guard let first = batch.first else { return 0 }
        try send(buffer, what: ConntrackMessage.deleteCommand(first.original, zone: first.zone))

        // nfnetlink handles every message of a send inside sendto(), so all the acks are queued
        // by now: read them without blocking.
        var deleted = 0
        var refusal: (index: Int, code: Int32, text: String?)?
        var overrun = false
        while !pending.isEmpty {
            let count = retryingInterrupts { recv(fd, receive.baseAddress, Self.receiveSize, Int32(MSG_DONTWAIT)) }
            if count < 0 {
                let code = errno
                if code == EAGAIN || code == EWOULDBLOCK { break }
                if code == ENOBUFS { overrun = true; continue }
                throw NetlinkError("read the kernel's answer to \(ConntrackMessage.deleteCommand(first.original, zone: first.zone))", errno: code)
            }
            for message in NetlinkMessage.Messages(UnsafeRawBufferPointer(rebasing: receive[0..<count])) {
                guard let code = message.errorCode, let index = pending.removeValue(forKey: message.sequence) else { continue }
                switch code {
                case 0: deleted += 1
                case ENOENT: break
                default:
                    if refusal.map({ index < $0.index }) ?? true { refusal = (index, code, message.errorText) }
                }
            }
        }
        if let refusal {
            let entry = batch[refusal.index]
            throw NetlinkError(ConntrackMessage.deleteCommand(entry.original, zone: entry.zone)
                + (refusal.text.map { " (kernel: \($0))" } ?? ""), errno: refusal.code)
        }
        if !pending.isEmpty {
            let lost = pending.values.sorted()
            if overrun && resendLost {
                return deleted + (try deleteBatch(ArraySlice(lost.map { batch[$0] }), resendLost: false))
            }
            let entry = batch[lost[0]]
            throw NetlinkError("\(ConntrackMessage.deleteCommand(entry.original, zone: entry.zone)): the kernel did not answer",
                               errno: overrun ? ENOBUFS : EPROTO)
        }
        return deleted
    }

    // MARK: Framing

    private func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    private func send(_ buffer: [UInt8], what: @autoclosure () -> String) throws(NetlinkError) {
        try sendToKernel(fd, buffer, what: what())
    }
}
