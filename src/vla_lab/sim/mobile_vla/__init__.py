"""The Mobile VLA box course: pass one or two boxes on the named side and reach the goal."""
