import PodwirePlugin

PluginProcess.main(name: "podwire-ipam", handler: PodwireIPAMPlugin.run)
