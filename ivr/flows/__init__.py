"""Call flows: YAML source with positions, the model, checks, one call's state, the
interpreter and its nodes, named HTTP services."""
