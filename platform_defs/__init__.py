"""The Plimsoll code location: one lazy Definitions function, its resources and profiles."""
