"""Links between the workshop and the cloud: the MQTT link and its wire formats, SQS, back-off."""
