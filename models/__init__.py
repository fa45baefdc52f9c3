"""Programs and worlds that run on simsock: server architectures, client workloads and topologies."""
