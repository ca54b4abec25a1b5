"""The device-side release engine: target model, pure planner, executor with journal and rollback."""
