"""NearHome's services and operator commands."""
