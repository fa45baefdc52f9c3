"""Build a simulation from a networkx graph.

::

    G = nx.Graph()
    G.add_node("r1", kind="router", queue=64)
    G.add_node("client")                                   # one link: kind defaults to "host"
    G.add_node("server", cores=4)
    G.add_edge("client", "r1", rate="100Mbit", delay="1ms")
    G.add_edge("r1", "server", rate="10Mbit", delay="10ms", loss=0.001)
    sim = simsock.topology.from_graph(G, seed=1)

Nodes are created in the graph's node order and links in its edge order, so the same
graph always builds the same world (addresses, stream names, tie-breaks in routing).
Node attributes: ``kind`` ("host" or "router"; may be left out only on a node with one
link, which is then a host); for hosts ``cores``; for
routers ``qdisc`` (a queue discipline, copied for each output port, or a callable returning
a new one per port), ``queue``
(packet limit of each port's drop-tail queue) and ``processing_delay``. Edge attributes are
:meth:`Simulation.add_link`'s: ``rate``, ``delay``, ``loss``, ``queue``, ``mtu``, ``qdisc``,
``jitter``. Anything else is refused, so that a misspelt attribute does not silently build
a different network. Routing is shortest path by delay over the result
(:meth:`Simulation.next_hop`); ``sim.graph`` is the topology as built.
"""

from __future__ import annotations

import networkx as nx

from simsock.sim import Simulation

__all__ = ["from_graph", "NODE_ATTRIBUTES", "EDGE_ATTRIBUTES"]

NODE_ATTRIBUTES = {
    "host": ("kind", "cores"),
    "router": ("kind", "qdisc", "queue", "processing_delay"),
}
EDGE_ATTRIBUTES = ("rate", "delay", "loss", "queue", "mtu", "qdisc", "jitter")


def _name(node) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, int) and not isinstance(node, bool):
        return str(node)
    raise TypeError(f"node {node!r}: node names must be str (or int, used as str); relabel the graph, "
                    f"e.g. nx.relabel_nodes(G, str)")


def from_graph(G, seed: int = 1, profile="linux", trace=True) -> Simulation:
    """A new :class:`Simulation` with one host or router per node of ``G`` and one link per
    edge. See the module docstring for the attributes read."""
    if not isinstance(G, nx.Graph):
        raise TypeError(f"from_graph needs a networkx Graph, got {type(G).__name__}")
    if G.is_directed():
        raise ValueError("links are full duplex: give an undirected graph (G.to_undirected())")
    if G.is_multigraph():
        raise ValueError("two nodes are joined by at most one link: give a Graph, not a MultiGraph")
    names: dict = {}
    for node in G.nodes:
        name = _name(node)
        if name in names.values():
            raise ValueError(f"nodes {node!r} and another one both become {name!r}; name nodes uniquely")
        names[node] = name
    sim = Simulation(seed=seed, profile=profile, trace=trace)
    for node, attrs in G.nodes(data=True):
        if "kind" not in attrs and G.degree(node) > 1:
            # A forgotten kind="router" would build a host, which does not forward: every
            # packet between its neighbours would be dropped without an error.
            raise ValueError(f"node {node!r} has {G.degree(node)} links but no kind: hosts do not forward "
                             f"packets, so say which it is: G.nodes[{node!r}]['kind'] = 'router' (or 'host' "
                             f"for a multi-homed host)")
        kind = attrs.get("kind", "host")
        if kind not in NODE_ATTRIBUTES:
            raise ValueError(f"node {node!r}: kind must be 'host' or 'router', got {kind!r}")
        unknown = sorted(set(attrs) - set(NODE_ATTRIBUTES[kind]))
        if unknown:
            raise ValueError(f"node {node!r} ({kind}): unknown attribute(s) {unknown}; a {kind} takes "
                             f"{list(NODE_ATTRIBUTES[kind])}")
        try:
            if kind == "host":
                sim.add_host(names[node], cores=attrs.get("cores", 1))
            else:
                sim.add_router(names[node], qdisc=attrs.get("qdisc"), queue=attrs.get("queue"),
                               processing_delay=attrs.get("processing_delay", 0))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"node {node!r}: {exc}") from None
    for u, v, attrs in G.edges(data=True):
        unknown = sorted(set(attrs) - set(EDGE_ATTRIBUTES))
        if unknown:
            raise ValueError(f"edge ({u!r}, {v!r}): unknown attribute(s) {unknown}; an edge takes "
                             f"{list(EDGE_ATTRIBUTES)}")
        if u == v:
            raise ValueError(f"edge ({u!r}, {v!r}) is a self-loop; a link joins two different nodes")
        kwargs = {k: attrs[k] for k in EDGE_ATTRIBUTES if k in attrs}
        try:
            sim.add_link(names[u], names[v], **kwargs)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"edge ({u!r}, {v!r}): {exc}") from None
    return sim
