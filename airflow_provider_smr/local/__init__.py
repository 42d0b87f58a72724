"""local of the Serverless MapReduce provider."""
