import PodwirePlugin

Podwire.main()
