"""Templates, button labels and listening words of every locale (prompts/<locale>/)."""
