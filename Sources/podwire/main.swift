import CNIPlugin
import PodwirePlugin

PluginProcess.main(name: "podwire", handler: Podwire.run)
