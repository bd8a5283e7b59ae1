"""Engine demo: learn a few sequences, observe, and print KATO's predictions (no services needed)."""

from __future__ import annotations

import json

from schema.rules.reference_kato import ReferenceKato


def main() -> None:
    kato = ReferenceKato()
    session = kato.session("demo_node", {"recall_threshold": 0.1})
    for sequence in ([["wake"], ["coffee"], ["work"]], [["wake"], ["tea"], ["read"]], [["wake"], ["coffee"], ["run"]]):
        for event in sequence:
            session.observe(event, emotives={"energy": 0.5 if "coffee" in event else 0.2})
        print("learned", session.learn(), "from", sequence)
    session.observe(["wake"])
    session.observe(["coffee"])
    predictions, future_potentials = session.predictions()
    print(f"\nSTM {session.state.stm} -> {len(predictions)} predictions")
    for p in predictions:
        print(json.dumps({k: p[k] for k in ("name", "similarity", "present", "future", "potential", "emotives")}))
    print("\nfuture potentials:")
    for fp in future_potentials:
        print(json.dumps(fp))


if __name__ == "__main__":
    main()
