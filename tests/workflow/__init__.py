"""Time-skipping tests of EngravingWorkflow with real cloud activities and a fake workshop."""
