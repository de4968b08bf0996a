"""Draw a flow from its state table: Mermaid for the README, an outline for the terminal.

Every arrow says what leads along it: the kind of answer a step takes (or, for a branch, the
answer that chooses it), a loop's next item, a called flow's return, another person's action.
"""

from __future__ import annotations

from core.engine.flow import END, NEXT, Each, Flow, Step, SubFlow, WaitFor


def _answer(step: Step) -> str:
    return type(step.expect).__name__ + (", skipped when already known" if step.skip else "")


def edges(flow: Flow) -> list[tuple[str, str, str]]:
    """(from, to, what leads there) for every transition the table allows."""
    starts = flow.starts or (flow.first,)
    found = [("start", target, "") for target in starts]
    for node in flow.steps:
        if isinstance(node, Each):
            found.append((node.name, node.steps[0].name, "for each item"))
            found.append((node.name, node.then, "no items"))
            for inner in node.steps:
                for target in inner.targets:
                    if target == NEXT:
                        found.append((inner.name, node.steps[0].name, f"{_answer(inner)}; next item"))
                        found.append((inner.name, node.then, f"{_answer(inner)}; after the last"))
                    else:
                        found.append((inner.name, target, _branch(inner, target)))
        elif isinstance(node, SubFlow):
            found.append((node.name, node.then, f"flow {node.flow} finished"))
        elif isinstance(node, WaitFor):
            found.append((node.name, node.then, "another person's action"))
        else:
            found.extend((node.name, target, _branch(node, target)) for target in node.targets)
    return found


def _branch(step: Step, target: str) -> str:
    """The label of one arrow out of `step`: the answer that chooses it, when the table names one."""
    if isinstance(step.branches, dict) and callable(step.then):
        return f"{_answer(step)}: {step.branches[target]}"
    return _answer(step)


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
    for node in flow.steps:
        if isinstance(node, Each):
            lines.append(f"  {node.name:<14} for each item, then → {node.then}")
            lines.extend("  " + _step_line(inner) for inner in node.steps)
        elif isinstance(node, SubFlow):
            lines.append(f"  {node.name:<14} runs flow {node.flow}, then → {node.then}")
        elif isinstance(node, WaitFor):
            lines.append(f"  {node.name:<14} waits for another person's action, then → {node.then}")
        else:
            lines.append(_step_line(node))
    return "\n".join(lines)


def _step_line(step: Step) -> str:
    return (f"  {step.name:<14} asks {step.ask:<28} expects {type(step.expect).__name__:<10} "
            f"→ {' | '.join(step.targets)}" + ("  (skipped when known)" if step.skip else ""))
