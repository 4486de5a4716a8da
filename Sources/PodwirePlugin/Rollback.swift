/// Undo steps, run newest first when an operation fails midway.
///
/// A chain of class nodes rather than an array of closures: an array of a function type is one
/// more generic type for the runtime to build on every ADD.
struct Rollback {
    private final class Step {
        let run: () -> Void
        var next: Step?
        init(_ run: @escaping () -> Void, next: Step?) {
            self.run = run
            self.next = next
        }
    }
    /// Newest first.
    private var newest: Step?

    mutating func add(_ step: @escaping () -> Void) { newest = Step(step, next: newest) }

    /// A step that runs after every other, whenever it was added.
    mutating func addRunningLast(_ step: @escaping () -> Void) {
        guard var last = newest else { return add(step) }
        while let next = last.next { last = next }
        last.next = Step(step, next: nil)
    }

    mutating func discard() { newest = nil }

    func run() {
        var step = newest
        while let current = step {
            current.run()
            step = current.next
        }
    }
}
