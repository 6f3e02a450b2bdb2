var builder = DistributedApplication.CreateBuilder(args);
builder.AddProject<Projects.Onyx_Gateway>("gateway");
builder.Build().Run();
