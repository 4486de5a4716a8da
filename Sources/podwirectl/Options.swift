import ArgumentParser
import PodwireControl

/// Which network a verb works on.
struct NetworkOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The network's config file (.conflist, .conf or .json).",
                                            discussion: "Default: the first podwire network in $NETCONFPATH (default /etc/cni/net.d).",
                                            valueName: "file"))
    var conflist: String?

    func network() throws -> NetworkList {
        if let conflist { return try NetworkList.load(path: conflist) }
        return try NetworkList.firstPodwireNetwork()
    }
}

/// `--json`: the data as one JSON document on stdout instead of text.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON document instead of text.")
    var json = false
}
