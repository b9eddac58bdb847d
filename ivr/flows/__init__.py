"""Call flows: YAML source with positions, the model, checks, the interpreter and its nodes."""
