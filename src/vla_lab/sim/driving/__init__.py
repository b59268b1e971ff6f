"""The driving road as a closed-loop world: road, camera, renderer, env, expert and recorder."""
