"""Pure rules: release keys, environment policy, the app's layout, frontend file rules, the stack contract.

Nothing here touches the Dagster instance, git, the network or a target: plain values in, plain values out.
"""
