"""Links between the workshop and the cloud: MQTT, SQS, Temporal workers and activities."""
