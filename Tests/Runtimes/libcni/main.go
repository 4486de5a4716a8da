// podwire-libcni runs a network configuration list through libcni (github.com/containernetworking/cni
// libcni, Debian's golang-github-appc-cni-dev) as containerd's CRI plugin and CRI-O call it for a
// pod sandbox: the list loaded from a configuration directory by network name, one RuntimeConf
// per attachment (Kubernetes CNI_ARGS, capability arguments such as portMappings), the result
// cached by libcni in a directory of the caller's choosing.
//
//	podwire-libcni [flags] add     AddNetworkList; prints the list's result
//	podwire-libcni [flags] check   CheckNetworkList (with the cached result)
//	podwire-libcni [flags] del     DelNetworkList (with the cached result, if any)
//	podwire-libcni [flags] cached  GetNetworkListCachedResult; prints it, or null when none
//
// A libcni error is printed on stderr and the exit status is 1; with a plugin's CNI error, its
// code, msg and details are printed on stdout as one JSON object too.
//
// Built in GOPATH mode against Debian's packaged libcni: standard library and libcni only.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

type options struct {
	confDir        string
	confList       string
	network        string
	pluginPath     string
	cacheDir       string
	containerID    string
	netns          string
	ifName         string
	podNamespace   string
	podName        string
	podUID         string
	capabilityArgs string
	timeout        time.Duration
}

func parseOptions() (options, string) {
	var o options
	flag.StringVar(&o.confDir, "confdir", "", "directory of network configurations, searched by network name (libcni.LoadConfList)")
	flag.StringVar(&o.confList, "conflist", "", "a .conflist file, read with libcni.ConfListFromBytes (instead of -confdir)")
	flag.StringVar(&o.network, "network", "", "network name, with -confdir")
	flag.StringVar(&o.pluginPath, "path", "", "plugin directories, colon-separated (the runtime's CNI bin dirs)")
	flag.StringVar(&o.cacheDir, "cache", "", "libcni's cache directory (results/ under it)")
	flag.StringVar(&o.containerID, "id", "", "the sandbox's container ID")
	flag.StringVar(&o.netns, "netns", "", "the sandbox's network namespace path (may be empty for del)")
	flag.StringVar(&o.ifName, "ifname", "eth0", "interface name in the sandbox")
	flag.StringVar(&o.podNamespace, "pod-namespace", "default", "K8S_POD_NAMESPACE")
	flag.StringVar(&o.podName, "pod-name", "", "K8S_POD_NAME")
	flag.StringVar(&o.podUID, "pod-uid", "", "K8S_POD_UID")
	flag.StringVar(&o.capabilityArgs, "capability-args", "{}", "JSON object: capability name to value (portMappings, ...)")
	flag.DurationVar(&o.timeout, "timeout", time.Minute, "deadline for the whole operation")
	flag.Parse()
	if flag.NArg() != 1 {
		fail(2, fmt.Errorf("want exactly one command (add, check, del, cached), got %q", flag.Args()))
	}
	return o, flag.Arg(0)
}

func fail(status int, err error) {
	fmt.Fprintf(os.Stderr, "podwire-libcni: %v\n", err)
	var cniError *types.Error
	if errors.As(err, &cniError) {
		if data, marshalError := json.Marshal(cniError); marshalError == nil {
			fmt.Println(string(data))
		}
	}
	os.Exit(status)
}

func loadList(o options) (*libcni.NetworkConfigList, error) {
	switch {
	case o.confList != "" && o.confDir == "":
		data, err := os.ReadFile(o.confList)
		if err != nil {
			return nil, err
		}
		return libcni.ConfListFromBytes(data)
	case o.confDir != "" && o.confList == "" && o.network != "":
		return libcni.LoadConfList(o.confDir, o.network)
	default:
		return nil, errors.New("give either -conflist FILE, or -confdir DIR and -network NAME")
	}
}

// runtimeConf is what containerd's CRI plugin (through go-cni) and CRI-O (through ocicni) hand
// libcni for a Kubernetes pod's sandbox.
func runtimeConf(o options) (*libcni.RuntimeConf, error) {
	capabilities := map[string]interface{}{}
	if err := json.Unmarshal([]byte(o.capabilityArgs), &capabilities); err != nil {
		return nil, fmt.Errorf("-capability-args is not a JSON object: %w", err)
	}
	return &libcni.RuntimeConf{
		ContainerID: o.containerID,
		NetNS:       o.netns,
		IfName:      o.ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", o.podNamespace},
			{"K8S_POD_NAME", o.podName},
			{"K8S_POD_INFRA_CONTAINER_ID", o.containerID},
			{"K8S_POD_UID", o.podUID},
		},
		CapabilityArgs: capabilities,
	}, nil
}

func printJSON(value interface{}) {
	data, err := json.Marshal(value)
	if err != nil {
		fail(1, fmt.Errorf("cannot print the result: %w", err))
	}
	fmt.Println(string(data))
}

func main() {
	o, command := parseOptions()
	if o.pluginPath == "" || o.cacheDir == "" || o.containerID == "" {
		fail(2, errors.New("-path, -cache and -id are required"))
	}
	list, err := loadList(o)
	if err != nil {
		fail(1, fmt.Errorf("loading the network list: %w", err))
	}
	rt, err := runtimeConf(o)
	if err != nil {
		fail(2, err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(o.pluginPath), o.cacheDir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	switch strings.ToLower(command) {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(1, err)
		}
		printJSON(result)
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(1, err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(1, err)
		}
	case "cached":
		result, err := cni.GetNetworkListCachedResult(list, rt)
		if err != nil {
			fail(1, err)
		}
		if result == nil {
			fmt.Println("null")
			return
		}
		printJSON(result)
	default:
		fail(2, fmt.Errorf("unknown command %q (add, check, del, cached)", command))
	}
}
