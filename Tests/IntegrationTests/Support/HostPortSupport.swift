import Foundation
import Testing

// Traffic through hostPorts: a listener in a pod that answers each TCP connection or UDP
// datagram with who it is and who it saw, and clients in the outside namespace, on the node
// itself or in a pod. Python 3 (a project dependency), IPv4 and IPv6 alike.

enum HostPortTraffic {
    /// Listens on `port` (TCP or UDP, IPv4 and IPv6) and answers "hello from <name> to <peer>"
    /// to every connection or datagram, until killed.
    static let listener = #"""
        import socket, sys
        proto, port, name, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port))
        if proto == "tcp":
            s.listen(16)
        with open(ready + ".tmp", "w") as f:
            f.write(str(__import__("os").getpid()))
        __import__("os").rename(ready + ".tmp", ready)
        def peer(address):
            host = address[0]
            return host[7:] if host.startswith("::ffff:") else host
        while True:
            if proto == "tcp":
                c, address = s.accept()
                c.sendall(("hello from %s to %s\n" % (name, peer(address))).encode())
                c.close()
            else:
                data, address = s.recvfrom(2048)
                s.sendto(("hello from %s to %s\n" % (name, peer(address))).encode(), address)
        """#

    /// One exchange with `address:port`: prints the answer's first line; exit 1 without one.
    /// `sourcePort` fixes a UDP client's port (a flow that keeps its conntrack entry).
    static let client = #"""
        import socket, sys
        proto, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
        source = int(sys.argv[4]) if len(sys.argv) > 4 else 0
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(3)
        if source:
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", source))
        try:
            if proto == "tcp":
                s.connect((address, port))
                print(s.makefile().readline().strip())
            else:
                s.sendto(b"hi", (address, port))
                print(s.recv(2048).decode().strip())
        except OSError as error:
            print("no answer: %s" % error, file=sys.stderr)
            sys.exit(1)
        """#
}

extension TestNode {
    /// Starts `HostPortTraffic.listener` in the namespace at `netns` and waits until it listens.
    /// Killed with the node, or by `stopListeners`.
    func startListener(netns: String, proto: String, port: Int, name: String) throws {
        let ready = "/run/listener-\(name)-\(proto)-\(port)"
        let script = """
            rm -f \(ready)
            setsid nsenter --net=\(netns) python3 -c "$0" \(proto) \(port) \(name) \(ready) </dev/null >/dev/null 2>&1 &
            for i in $(seq 200); do [ -e \(ready) ] && exit 0; sleep 0.05; done
            echo "the \(proto) listener on port \(port) in \(netns) never started" >&2
            exit 1
            """
        let result = try run(["bash", "-c", script, HostPortTraffic.listener], timeout: 20)
        guard result.succeeded else { throw TestNodeError.commandFailed(argv: ["start listener"], result: result) }
    }

    /// Kills every listener started by `startListener`.
    func stopListeners() throws {
        _ = try run(["bash", "-c", "for f in /run/listener-*; do [ -e \"$f\" ] && kill -KILL $(cat \"$f\") 2>/dev/null; rm -f \"$f\"; done; exit 0"])
    }

    /// One exchange from `netns` (nil: the node itself) with `address:port`: the answer's line,
    /// or nil when none came.
    func exchange(from netns: String?, proto: String, address: String, port: Int, sourcePort: Int? = nil) throws -> String? {
        var argv = ["python3", "-c", HostPortTraffic.client, proto, address, String(port)]
        if let sourcePort { argv.append(String(sourcePort)) }
        if let netns { argv = ["nsenter", "--net=\(netns)", "--"] + argv }
        let result = try run(["timeout", "10"] + argv, timeout: 20)
        return result.succeeded ? result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }

    /// `nft list map inet <table> <map>`'s elements, one per line as nft prints them
    /// ("tcp . 8080 comment \"<owner>\" : 10.244.1.2 . 80"); empty when the map does not exist.
    func mapElements(table: String, map: String) throws -> [String] {
        let result = try run(["nft", "list", "map", "inet", table, map])
        guard result.succeeded else { return [] }
        return result.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.contains(" : ") && !$0.hasPrefix("type ") }
            .map { $0.replacingOccurrences(of: "elements = { ", with: "").trimmingCharacters(in: CharacterSet(charactersIn: ", }")) }
    }
}
