"""The Google Gemini API family (generateContent, streamGenerateContent)."""
