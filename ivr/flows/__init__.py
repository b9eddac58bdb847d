"""Call flows: YAML source with positions, the model, checks, and (soon) the interpreter."""
