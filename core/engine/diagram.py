"""Draw a flow from its state table: Mermaid for the README, an outline for the terminal."""

from __future__ import annotations

from core.engine.flow import END, Flow


def edges(flow: Flow) -> list[tuple[str, str, str]]:
    """(from, to, what happens) for every transition the table allows."""
    starts = flow.starts or (flow.first,)
    found = [("start", target, "") for target in starts]
    for step in flow.steps:
        label = type(step.expect).__name__ + (", skipped when already known" if step.skip else "")
        found.extend((step.name, target, label) for target in step.targets)
    return found


def mermaid(flow: Flow) -> str:
    """A Mermaid state diagram of `flow`."""
    lines = [f"%% flow: {flow.name}", "stateDiagram-v2"]
    for source, target, label in edges(flow):
        source = "[*]" if source == "start" else source
        target = "[*]" if target == END else target
        lines.append(f"    {source} --> {target}" + (f": {label}" if label else ""))
    return "\n".join(lines)


def outline(flow: Flow) -> str:
    """One line per step: what it asks, what it accepts, where it leads."""
    lines = [f"{flow.name}:"]
    for step in flow.steps:
        lines.append(f"  {step.name:<14} asks {step.ask:<28} expects {type(step.expect).__name__:<10} "
                     f"→ {' | '.join(step.targets)}" + ("  (skipped when known)" if step.skip else ""))
    return "\n".join(lines)
