"""The AWS Bedrock Converse / ConverseStream family."""
