"""Graphviz DOT text of a tensor's graph, with no graphviz dependency."""
from .engine import toposort
from .node import Op


def to_dot(tensor):
    """Return DOT text drawing the ops (name and output shape) that produced ``tensor``.

    Leaves that require grad are drawn as boxes with their shapes. Render the text with
    any Graphviz tool, for example ``dot -Tpng graph.dot -o graph.png``.
    """
    lines = ["digraph minireparam {", "  rankdir=BT;", '  node [fontname="monospace"];']
    if tensor._node is None:
        lines.append(f'  leaf0 [shape=box, label="leaf {tuple(tensor.shape)}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"

    order = toposort([tensor._node])
    names = {node: f"op{i}" for i, node in enumerate(order)}
    leaves = {}
    for node in order:
        shape = tuple(node.output_meta[0]) if node.output_meta else ()
        lines.append(f'  {names[node]} [label="{node.display_name()}\\n{shape}"];')
    for node in order:
        for parent in node.parents:
            if parent is None:
                continue
            if isinstance(parent, Op):
                source = names[parent]
            else:
                if parent not in leaves:
                    leaves[parent] = f"leaf{len(leaves)}"
                    lines.append(f'  {leaves[parent]} [shape=box, label="leaf {tuple(parent.shape)}"];')
                source = leaves[parent]
            lines.append(f"  {source} -> {names[node]};")
    lines.append("}")
    return "\n".join(lines) + "\n"
