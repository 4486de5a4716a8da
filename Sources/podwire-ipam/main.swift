import CNIPlugin
import IPAMPlugin

PluginProcess.main(name: "podwire-ipam", handler: PodwireIPAMPlugin.run)
