"""links of the Serverless MapReduce provider."""
