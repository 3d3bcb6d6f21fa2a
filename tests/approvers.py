"""Two declared approvers with keys made in the test, for the high-tier use cases' approvals."""

from __future__ import annotations

#: The two people who approve a high-tier model: their keys are made here, in a temporary folder.
APPROVERS = ("risk.officer", "marketing.lead")


def declare_approvers(folder):
    """Key pairs for APPROVERS (private keys ``<name>.pem`` in ``folder``) and the approvers file declaring them."""
    import yaml

    from factory_assets.governance.approvals import generate_key_pair, public_key_line

    entries = []
    for name in APPROVERS:
        pem, public = generate_key_pair()
        (folder / f"{name}.pem").write_bytes(pem)
        entries.append({"name": name, "role": "reviewer", "tiers": ["high"], "public_key": public_key_line(public, name)})
    (folder / "approvers.yaml").write_text(yaml.safe_dump({"approvers": entries}))
    return folder / "approvers.yaml"
