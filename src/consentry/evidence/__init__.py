"""Evidence: is this content AI-generated or AI-edited, and how do we know? (DESIGN.md section 7)."""
